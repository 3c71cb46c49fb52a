package main

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// requestTimeout fails a request that takes longer than this.
const requestTimeout = 30 * time.Second

// stats is the outcome of one measured run.
type stats struct {
	// OK counts the requests (or operations) that succeeded.
	OK int64
	// Errors counts the rest; FirstError says what went wrong first.
	Errors     int64
	FirstError string
	// Elapsed runs from the first request sent to the last answer.
	Elapsed time.Duration
	// P50 and P99 are latency percentiles over every request.
	P50, P99 time.Duration
	// CPU is where the machine's cores went during the run.
	CPU cpuUse
}

// PerSecond is the rate of successful requests.
func (s stats) PerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.OK) / s.Elapsed.Seconds()
}

// load runs closed-loop load: a fixed number of workers, each sending its
// next request as soon as the previous one is answered.
type load struct {
	concurrency int
	duration    time.Duration
	meter       cpuMeter
}

// http sends target with vegeta for l.duration and counts an answer with
// status want as success. Response bodies are read and discarded.
func (l load) http(ctx context.Context, target vegeta.Target, want int) stats {
	n := uint64(l.concurrency)
	attacker := vegeta.NewAttacker(
		vegeta.Workers(n), vegeta.MaxWorkers(n), // exactly n in flight
		vegeta.Connections(l.concurrency), vegeta.KeepAlive(true),
		vegeta.MaxBody(0), vegeta.Timeout(requestTimeout), vegeta.Redirects(vegeta.NoFollow),
	)
	stop := context.AfterFunc(ctx, func() { attacker.Stop() })
	defer stop()

	var (
		s         stats
		latencies []time.Duration
	)
	cpu := l.meter.snapshot()
	start := time.Now()
	// A zero rate is no pacing at all: each worker loops as fast as answers come.
	for res := range attacker.Attack(vegeta.NewStaticTargeter(target), vegeta.Rate{}, l.duration, "") {
		latencies = append(latencies, res.Latency)
		if res.Code == uint16(want) && res.Error == "" {
			s.OK++
			continue
		}
		s.Errors++
		if s.FirstError == "" {
			s.FirstError = res.Error
			if s.FirstError == "" {
				s.FirstError = http.StatusText(int(res.Code))
			}
		}
	}
	s.Elapsed = time.Since(start)
	s.CPU = l.meter.since(cpu)
	s.P50, s.P99 = percentiles(latencies)
	return s
}

// goroutines runs op from l.concurrency goroutines for l.duration, each
// calling it again as soon as it returns. It is the load of the database
// floors, which have no HTTP in the way.
func (l load) goroutines(ctx context.Context, op func(context.Context) error) stats {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu        sync.Mutex
		s         stats
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	cpu := l.meter.snapshot()
	start := time.Now()
	deadline := start.Add(l.duration)
	for range l.concurrency {
		wg.Go(func() {
			var mine []time.Duration
			var ok, failed int64
			var firstErr error
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t := time.Now()
				err := op(ctx)
				mine = append(mine, time.Since(t))
				if err != nil {
					failed++
					firstErr = cmpOr(firstErr, err)
					continue
				}
				ok++
			}
			mu.Lock()
			defer mu.Unlock()
			latencies = append(latencies, mine...)
			s.OK += ok
			s.Errors += failed
			if s.FirstError == "" && firstErr != nil {
				s.FirstError = firstErr.Error()
			}
		})
	}
	wg.Wait()
	s.Elapsed = time.Since(start)
	s.CPU = l.meter.since(cpu)
	s.P50, s.P99 = percentiles(latencies)
	return s
}

// cmpOr returns a if it is not nil, else b.
func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// percentiles returns the 50th and 99th percentile of latencies (nearest
// rank), sorting it.
func percentiles(latencies []time.Duration) (p50, p99 time.Duration) {
	if len(latencies) == 0 {
		return 0, 0
	}
	slices.Sort(latencies)
	at := func(q float64) time.Duration {
		return latencies[int(q*float64(len(latencies)-1)+0.5)]
	}
	return at(0.50), at(0.99)
}
