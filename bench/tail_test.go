package main

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestSubscriberCountsEveryEntry feeds a subscriber a stream cut at every
// byte and in one piece: it counts every entry event (not the retry, the
// heartbeat or the overflow event) and times exactly the sampled ones.
func TestSubscriberCountsEveryEntry(t *testing.T) {
	t.Parallel()
	stamp := time.Now().Add(-time.Second).UTC()
	var b strings.Builder
	b.WriteString("retry: 2000\n\n: heartbeat\n\n")
	const n = 100
	for seq := 1; seq <= n; seq++ {
		fmt.Fprintf(&b, "id: %d\nevent: entry\ndata: {\"id\":\"x\",\"timestamp\":%q,\"seq\":%d}\n\n", seq, stamp.Format(time.RFC3339Nano), seq)
	}
	b.WriteString("event: overflow\ndata: {\"after\":100,\"reason\":\"r\"}\n\n")
	for name, r := range map[string]func() io.Reader{
		"whole":     func() io.Reader { return strings.NewReader(b.String()) },
		"byte-wise": func() io.Reader { return iotest.OneByteReader(strings.NewReader(b.String())) },
	} {
		t.Run(name, func(t *testing.T) {
			s := &subscriber{arrivals: map[int64]time.Time{}}
			s.read(r())
			if got := s.got.Load(); got != n {
				t.Errorf("counted %d entries, want %d", got, n)
			}
			if want := n / latencySample; len(s.latencies) != want || len(s.arrivals) != want {
				t.Fatalf("timed %d entries (%d arrivals), want %d", len(s.latencies), len(s.arrivals), want)
			}
			for seq := range s.arrivals {
				if seq%latencySample != 0 {
					t.Errorf("timed seq %d, not a multiple of %d", seq, latencySample)
				}
			}
			for _, l := range s.latencies {
				if l < time.Second || l > time.Minute {
					t.Errorf("latency %s, want about a second", l)
				}
			}
		})
	}
}
