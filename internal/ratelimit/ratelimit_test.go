package ratelimit

import (
	"errors"
	"testing"
	"time"
)

func TestLimits(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1_700_000_000, 0)
	l := New()
	l.now = func() time.Time { return clock }
	p := Policy{Requests: 10, Entries: 2000, InFlight: 3}

	// A burst of a second's worth, then refused until a token is back.
	var releases []func()
	for i := range 10 {
		release, err := l.Begin("a", p)
		if err != nil {
			t.Fatalf("request %d of the burst: %v", i, err)
		}
		release() // nothing stays in flight
		releases = append(releases, release)
	}
	_, err := l.Begin("a", p)
	var refusal *Refusal
	if !errors.As(err, &refusal) || refusal.Policy != "requests" || refusal.RetryAfter != 100*time.Millisecond {
		t.Fatalf("11th request: %v (%+v), want refused for 100ms by requests", err, refusal)
	}
	if pol, lim := refusal.Header(); pol != `"requests";q=10;w=1` || lim != `"requests";r=0;t=1` {
		t.Errorf("headers %q %q", pol, lim)
	}
	slow := &Refusal{Policy: "requests", Quota: 0.1, RetryAfter: 10 * time.Second}
	if pol, lim := slow.Header(); pol != `"requests";q=1;w=10` || lim != `"requests";r=0;t=10` {
		t.Errorf("headers of a rate under one per second: %q %q", pol, lim)
	}
	if _, err := l.Begin("b", p); err != nil {
		t.Errorf("another client was refused: %v", err)
	}
	clock = clock.Add(time.Second)

	// In flight: three at once, a fourth refused, admitted once one ends.
	var held []func()
	for range 3 {
		release, err := l.Begin("a", p)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	if _, err := l.Begin("a", p); !errors.As(err, &refusal) || refusal.Policy != "in-flight" {
		t.Fatalf("4th in flight: %v, want refused by in-flight", err)
	}
	held[0]()
	held[0]() // releasing twice counts once
	if _, err := l.Begin("a", p); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if _, err := l.Begin("a", p); err == nil {
		t.Fatal("a double release freed two slots")
	}

	// Entries: a full batch fits the burst, the next waits for its share.
	if err := l.Entries("a", p, 1000); err != nil {
		t.Fatal(err)
	}
	if err := l.Entries("a", p, 1000); err != nil {
		t.Fatal(err)
	}
	if err := l.Entries("a", p, 1000); !errors.As(err, &refusal) || refusal.Policy != "entries" || refusal.RetryAfterSeconds() != 1 {
		t.Fatalf("third batch: %v, want refused by entries for a second", err)
	}
	// No limit when a field is zero.
	for range 100 {
		if _, err := l.Begin("free", Policy{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForgetsIdleClients: the clients remembered stay bounded.
func TestForgetsIdleClients(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1_700_000_000, 0)
	l := New()
	l.now = func() time.Time { return clock }
	for i := range 3 * maxClients {
		release, err := l.Begin(string(rune(i)), Policy{Requests: 1})
		if err != nil {
			t.Fatal(err)
		}
		release()
		clock = clock.Add(time.Millisecond)
	}
	if n := len(l.clients); n > maxClients {
		t.Errorf("%d clients remembered, want at most %d", n, maxClients)
	}
}

// BenchmarkAdmitWrite is what the limits cost one single write: admit the
// request, take its entry, release it.
func BenchmarkAdmitWrite(b *testing.B) {
	l := New()
	p := Policy{Requests: 1e9, Entries: 1e9, InFlight: 1 << 20}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, err := l.Begin("token:bench", p)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Entries("token:bench", p, 1); err != nil {
				b.Fatal(err)
			}
			release()
		}
	})
}

// TestReadBytes: pages are charged once read, into debt; the next page is
// refused until the rate has paid the debt back, for as long as it takes.
func TestReadBytes(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1_700_000_000, 0)
	l := New()
	l.now = func() time.Time { return clock }
	p := Policy{Read: 4 << 20} // 4 MiB/s, bursting to MinReadBurst (8 MiB)

	// The burst: two 4 MiB pages, then a third read in full into debt.
	for i := range 3 {
		if err := l.ReadAllowed("a", p); err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		l.Read("a", p, 4<<20)
	}
	err := l.ReadAllowed("a", p)
	var refusal *Refusal
	if !errors.As(err, &refusal) || refusal.Policy != "read-bytes" || refusal.RetryAfterSeconds() != 1 {
		t.Fatalf("fourth page: %v (%+v), want refused by read-bytes for a second", err, refusal)
	}
	if pol, lim := refusal.Header(); pol != `"read-bytes";q=4194304;w=1;qu="content-bytes"` || lim != `"read-bytes";r=0;t=1` {
		t.Errorf("headers %q %q", pol, lim)
	}
	if err := l.ReadAllowed("b", p); err != nil {
		t.Errorf("another client was refused: %v", err)
	}
	// A page larger than the burst is charged a burst's worth: with the
	// page before, three seconds of debt, not forever.
	l.Read("a", p, 1<<30)
	clock = clock.Add(2 * time.Second)
	if err := l.ReadAllowed("a", p); err == nil {
		t.Fatal("served while a debt was unpaid")
	}
	clock = clock.Add(time.Second + time.Millisecond)
	if err := l.ReadAllowed("a", p); err != nil {
		t.Fatalf("after the debt was paid: %v", err)
	}
	// No limit when Read is zero.
	l.Read("free", Policy{}, 1<<30)
	if err := l.ReadAllowed("free", Policy{}); err != nil {
		t.Fatal(err)
	}
}
