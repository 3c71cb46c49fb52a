// Package health runs the readiness checks behind Kubernetes probes and
// tracks the process's uptime.
package health

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
)

// Check is one readiness check. Run must honour ctx's deadline.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// shuttingDown is the shutdown check's error once the server has begun to
// drain.
const shuttingDown = "server is shutting down"

// Checker runs the readiness checks and tracks the process's uptime.
type Checker struct {
	checks []Check
	// healthOnly checks count for overall health, not readiness.
	healthOnly []Check
	timeout    time.Duration
	started    time.Time
	version    string
	logger     *slog.Logger
	draining   atomic.Bool
}

// NewChecker returns a checker that runs checks, each bounded by timeout.
func NewChecker(version string, timeout time.Duration, logger *slog.Logger, checks ...Check) *Checker {
	return &Checker{checks: checks, timeout: timeout, started: time.Now(), version: version, logger: logger}
}

// AlsoForHealth adds checks that degrade overall health (Health) but not
// readiness (Ready): a problem that more traffic would not make worse,
// such as the ledger's sequencer falling behind. Call it before serving.
func (c *Checker) AlsoForHealth(checks ...Check) { c.healthOnly = append(c.healthOnly, checks...) }

// Health runs the readiness checks and the health-only ones and reports
// whether all passed, as Ready does.
func (c *Checker) Health(ctx context.Context) (bool, []api.Check) {
	ok, results := c.Ready(ctx)
	extra := make([]api.Check, len(c.healthOnly))
	var wg sync.WaitGroup
	for i, check := range c.healthOnly {
		wg.Go(func() { extra[i] = c.run(ctx, check) })
	}
	wg.Wait()
	for _, r := range extra {
		ok = ok && r.Status == api.CheckStatusOk
	}
	return ok, append(results, extra...)
}

// Drain makes readiness fail from now on, so load balancers stop sending
// traffic while in-flight requests finish.
func (c *Checker) Drain() { c.draining.Store(true) }

// Version returns the build version.
func (c *Checker) Version() string { return c.version }

// StartedAt returns when the checker, and so the process, started.
func (c *Checker) StartedAt() time.Time { return c.started }

// Uptime returns the time since start.
func (c *Checker) Uptime() time.Duration { return time.Since(c.started) }

// Ready runs every check concurrently and reports whether all passed. Failed
// checks carry a short summary; the cause is logged, never returned.
func (c *Checker) Ready(ctx context.Context) (bool, []api.Check) {
	results := make([]api.Check, len(c.checks)+1)
	var wg sync.WaitGroup
	for i, check := range c.checks {
		wg.Go(func() {
			results[i] = c.run(ctx, check)
		})
	}
	wg.Wait()
	results[len(c.checks)] = api.Check{Name: "shutdown", Status: api.CheckStatusOk}
	if c.draining.Load() {
		msg := shuttingDown
		results[len(c.checks)] = api.Check{Name: "shutdown", Status: api.CheckStatusFail, Error: &msg}
	}
	ok := true
	for _, r := range results {
		ok = ok && r.Status == api.CheckStatusOk
	}
	return ok, results
}

func (c *Checker) run(ctx context.Context, check Check) api.Check {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := time.Now()
	err := check.Run(ctx)
	result := api.Check{
		Name:       check.Name,
		Status:     api.CheckStatusOk,
		DurationMs: float64(time.Since(start).Microseconds()) / 1000,
	}
	if err != nil {
		msg := "check failed"
		var safe interface{ Safe() string }
		if errors.As(err, &safe) {
			msg = safe.Safe()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			msg = "check timed out after " + c.timeout.String()
		}
		c.logger.WarnContext(ctx, "readiness check failed", "check", check.Name, "error", err)
		result.Status, result.Error = api.CheckStatusFail, &msg
	}
	return result
}
