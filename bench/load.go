package main

import (
	"context"
	"fmt"
	"math"
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

	latencies []time.Duration
}

// merge adds o, a run of the same load at another time, to s.
func (s *stats) merge(o stats) {
	total := s.Elapsed + o.Elapsed
	if total > 0 {
		s.CPU = s.CPU.scale(float64(s.Elapsed) / float64(total)).plus(o.CPU.scale(float64(o.Elapsed) / float64(total)))
	}
	s.OK += o.OK
	s.Errors += o.Errors
	if s.FirstError == "" {
		s.FirstError = o.FirstError
	}
	s.Elapsed = total
	s.latencies = append(s.latencies, o.latencies...)
	s.P50, s.P99 = percentiles(s.latencies)
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
	return l.httpTargets(ctx, []vegeta.Target{target}, want)
}

// httpTargets is http with targets sent in turn.
func (l load) httpTargets(ctx context.Context, targets []vegeta.Target, want int) stats {
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
	for res := range attacker.Attack(vegeta.NewStaticTargeter(targets...), vegeta.Rate{}, l.duration, "") {
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
	s.latencies = latencies
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
	s.latencies = latencies
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

// percentiles returns the 50th and 99th percentile of latencies by the
// nearest-rank method (the smallest value with at least q of them at or
// below it), sorting latencies.
func percentiles(latencies []time.Duration) (p50, p99 time.Duration) {
	if len(latencies) == 0 {
		return 0, 0
	}
	slices.Sort(latencies)
	at := func(q float64) time.Duration {
		return latencies[max(int(math.Ceil(q*float64(len(latencies))))-1, 0)]
	}
	return at(0.50), at(0.99)
}

// contender is one side of a comparison: the full stack, or a floor.
type contender struct {
	name string
	// concurrency is its number of workers.
	concurrency int
	// serverPID is the process whose CPU counts as the server's; 0 for none.
	serverPID int
	// run applies one slice of load.
	run func(load) stats
	// into accumulates the measured slices.
	into *stats
}

// interleave warms each contender up, then measures them in turns: rounds
// slices of duration/rounds each, so that a floor and the stack it bounds
// get the same share of whatever else the machine is doing. before runs
// ahead of every measured slice (to reset the database, say). progress
// names each contender as its first slice starts.
func interleave(ctx context.Context, cfg config, meter cpuMeter, progress func(string, ...any),
	before func(context.Context) error, cs ...contender) error {
	slice := cfg.Duration / time.Duration(cfg.Rounds)
	loadOf := func(c contender, d time.Duration) load {
		m := meter
		m.serverPID = c.serverPID
		return load{concurrency: c.concurrency, duration: d, meter: m}
	}
	if cfg.Warmup > 0 {
		for _, c := range cs {
			c.run(loadOf(c, cfg.Warmup))
		}
	}
	for round := range cfg.Rounds {
		for _, c := range cs {
			if round == 0 {
				progress("%s (%d× %s)", c.name, cfg.Rounds, slice)
			}
			if before != nil {
				if err := before(ctx); err != nil {
					return err
				}
			}
			c.into.merge(c.run(loadOf(c, slice)))
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	for _, c := range cs {
		if c.into.OK == 0 {
			return fmt.Errorf("%s: no request succeeded (%d failed, first: %s)", c.name, c.into.Errors, c.into.FirstError)
		}
	}
	return nil
}
