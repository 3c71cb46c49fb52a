package ratelimit

import (
	"context"
	"testing"
	"time"
)

// acquired returns a channel that gets client's release once it holds a
// slot of s.
func acquired(t *testing.T, s *Share, ctx context.Context, client string) <-chan func() {
	t.Helper()
	got := make(chan func(), 1)
	go func() {
		release, err := s.Acquire(ctx, client)
		if err != nil {
			close(got)
			return
		}
		got <- release
	}()
	return got
}

// waitFor returns the release got delivers within a bound, or fails.
func waitFor(t *testing.T, what string, got <-chan func()) func() {
	t.Helper()
	select {
	case release, ok := <-got:
		if !ok {
			t.Fatalf("%s: acquire failed", what)
		}
		return release
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no slot within 10s", what)
		return nil
	}
}

// waiting polls until client has n requests waiting in s.
func waiting(t *testing.T, s *Share, client string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		c := s.clients[client]
		got := 0
		if c != nil {
			got = len(c.waiting)
		}
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d waiting, want %d", client, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func noSlot(t *testing.T, what string, got <-chan func()) {
	t.Helper()
	select {
	case <-got:
		t.Fatalf("%s got a slot", what)
	default:
	}
}

func TestShareLeavesRoomForOthers(t *testing.T) {
	t.Parallel()
	s := NewShare(4, 2)
	ctx := context.Background()
	a1 := waitFor(t, "a's first", acquired(t, s, ctx, "a"))
	a2 := waitFor(t, "a's second", acquired(t, s, ctx, "a"))
	a3 := acquired(t, s, ctx, "a")
	waiting(t, s, "a", 1)
	noSlot(t, "a's third, over its share", a3)
	// b finds one of the two slots a may not take.
	b1 := waitFor(t, "b, while a waits", acquired(t, s, ctx, "b"))
	a1()
	a3r := waitFor(t, "a's third, once its first is done", a3)
	for _, r := range []func(){a2, a3r, b1, a1} { // a1 again: release is once
		r()
	}
	if s.free != 4 || len(s.clients) != 0 || len(s.turn) != 0 {
		t.Errorf("after every release: %d free, %d clients, %d in turn", s.free, len(s.clients), len(s.turn))
	}
}

func TestShareServesClientsInTurn(t *testing.T) {
	t.Parallel()
	s := NewShare(1, 1)
	ctx := context.Background()
	held := waitFor(t, "a's first", acquired(t, s, ctx, "a"))
	var as []<-chan func()
	for range 3 {
		as = append(as, acquired(t, s, ctx, "a"))
		waiting(t, s, "a", len(as))
	}
	b := acquired(t, s, ctx, "b")
	waiting(t, s, "b", 1)
	held()
	// b asked last but a has had its turn: b is next, then a's in order.
	held = waitFor(t, "b, after a's first", b)
	for i, a := range as {
		noSlot(t, "a's next", a)
		held()
		held = waitFor(t, "a's waiting request "+string(rune('1'+i)), a)
	}
	held()
}

func TestShareForgetsWhoStopsWaiting(t *testing.T) {
	t.Parallel()
	s := NewShare(1, 1)
	held := waitFor(t, "a", acquired(t, s, context.Background(), "a"))
	ctx, cancel := context.WithCancel(context.Background())
	gone := acquired(t, s, ctx, "b")
	waiting(t, s, "b", 1)
	cancel()
	if _, ok := <-gone; ok {
		t.Fatal("a canceled wait got a slot")
	}
	c := acquired(t, s, context.Background(), "c")
	waiting(t, s, "c", 1)
	held()
	waitFor(t, "c, after b gave up", c)()
	if s.free != 1 || len(s.clients) != 0 {
		t.Errorf("%d free, %d clients, want 1 and none", s.free, len(s.clients))
	}
}
