package contract_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/valhalla-platform/valhalla/internal/contract"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// writeBody is a typical single write: every field set, as make bench sends it.
const writeBody = `{"level":"WARNING","category":"auth","message":"new device signed in",` +
	`"correlation_id":"checkout-7f3a","user_id":"user-42","context":{"ip":"203.0.113.7","attempt":2}}`

// benchValidator is the validator with the server's limits.
func benchValidator(b *testing.B) *contract.Validator {
	b.Helper()
	v, err := contract.New(1<<20, map[string]int64{"createSystemLogBatch": 16 << 20}, allowAll)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// discard is a ResponseWriter that keeps nothing, so the benchmarks measure
// the validator rather than a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// benchMiddleware runs requests made by newRequest through the validation
// middleware into a handler that only drains the body, and fails if one of
// them is rejected.
func benchMiddleware(b *testing.B, newRequest func() *http.Request) {
	v := benchValidator(b)
	h := v.Middleware(func(_ http.ResponseWriter, _ *http.Request, err error) {
		b.Fatalf("request rejected: %v", err)
	})(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		h.ServeHTTP(w, newRequest())
	}
	// ns/op is wall time, which grows when other processes take the
	// cores; cpu-ns/op is the process's CPU time (every thread, the
	// garbage collector's included), comparable with a server's CPU.
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// newPost builds a POST the way net/http hands one to a handler.
func newPost(ctx context.Context, target, body string) *http.Request {
	r, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Request-ID", "checkout-7f3a")
	return r
}

// BenchmarkValidateWrite is what the contract costs one POST /system/logs:
// routing, content type, body limit, and schema validation of the body.
func BenchmarkValidateWrite(b *testing.B) {
	ctx := b.Context()
	benchMiddleware(b, func() *http.Request { return newPost(ctx, "/system/logs", writeBody) })
}

// BenchmarkValidateBatch is the same for a batch of 1000 entries; divide
// ns/op by 1000 for the cost per entry.
func BenchmarkValidateBatch(b *testing.B) {
	ctx := b.Context()
	var sb strings.Builder
	sb.WriteString(`{"entries":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(writeBody)
	}
	sb.WriteString(`]}`)
	body := sb.String()
	benchMiddleware(b, func() *http.Request { return newPost(ctx, "/system/logs/batch", body) })
}

// BenchmarkValidateList is the contract's cost for a filtered list request.
func BenchmarkValidateList(b *testing.B) {
	ctx := b.Context()
	target := "/system/logs?category=auth&min_level=WARNING&user_id=user-42&limit=50" +
		"&since=2025-01-01T00:00:00Z&until=2025-02-01T00:00:00Z&include_total=true"
	benchMiddleware(b, func() *http.Request {
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, http.NoBody)
		return r
	})
}

// BenchmarkProblemMapping maps a validation error with four violations (a
// wrong enum, a too short string, a missing and an unknown property) to a
// problem.
func BenchmarkProblemMapping(b *testing.B) {
	v := benchValidator(b)
	r := newPost(b.Context(), "/system/logs", `{"level":"LOUD","user_id":"","extra":1}`)
	var cause error
	v.Middleware(func(_ http.ResponseWriter, _ *http.Request, err error) {
		var p *problem.Problem
		if errors.As(err, &p) {
			cause = p.Cause
		}
	})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(&discard{h: http.Header{}}, r)
	var reqErr *openapi3filter.RequestError
	if !errors.As(cause, &reqErr) {
		b.Fatalf("want a validation error, got %v", cause)
	}
	b.ReportAllocs()
	for b.Loop() {
		p := contract.Problem(cause)
		if len(p.Errors) != 4 {
			b.Fatalf("want 4 violations, got %d: %v", len(p.Errors), p.Errors)
		}
	}
}
