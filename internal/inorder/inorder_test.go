package inorder_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/valhalla-platform/valhalla/internal/inorder"
)

type span struct{ after, through int64 }

// TestRangesInOrder: every range of (after, through] is read once, the last
// one shorter, and the results arrive in range order even when a later
// read finishes first; no more than readers reads run at once.
func TestRangesInOrder(t *testing.T) {
	var mu sync.Mutex
	running, most := 0, 0
	secondDone := make(chan struct{})
	read := func(_ context.Context, after, through int64) span {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		switch after {
		case 10: // the first read waits until the second has finished
			<-secondDone
		case 20:
			defer close(secondDone)
		}
		return span{after, through}
	}
	var got []span
	for s := range inorder.Ranges(t.Context(), 10, 55, 10, 2, read) {
		got = append(got, s)
	}
	want := []span{{10, 20}, {20, 30}, {30, 40}, {40, 50}, {50, 55}}
	if !slices.Equal(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
	if most > 2 {
		t.Errorf("%d reads ran at once, want at most 2", most)
	}
}

// TestRangesStopsWhenCancelled: once ctx is done the channel closes after
// at most one more result, and at most one more read starts. When the
// first result arrives at most three reads have started (it, the one
// waiting to be handed over, the one queued).
func TestRangesStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var mu sync.Mutex
	var started []int64
	read := func(_ context.Context, after, _ int64) int64 {
		mu.Lock()
		started = append(started, after)
		mu.Unlock()
		return after
	}
	results := inorder.Ranges(ctx, 0, 1_000_000, 1, 2, read)
	if first := <-results; first != 0 {
		t.Fatalf("first result %d, want 0", first)
	}
	cancel()
	n := 1
	for range results {
		n++
	}
	mu.Lock()
	defer mu.Unlock()
	if n > 2 || len(started) > 4 {
		t.Errorf("%d results delivered and %d reads started, want at most 2 and 4", n, len(started))
	}
}
