package observe_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/valhalla-platform/valhalla/internal/logging"
	"github.com/valhalla-platform/valhalla/internal/metrics"
	"github.com/valhalla-platform/valhalla/internal/observe"
	"github.com/valhalla-platform/valhalla/internal/requestid"
	"github.com/valhalla-platform/valhalla/internal/tracing"
)

// BenchmarkOverhead measures what observability adds to a request that does
// nothing, with no OTLP endpoint (as in production without one): "bare" has
// the request id only; "tracing" adds the trace-context middleware (ids
// minted, nothing recorded); "observe" adds metrics and the access log
// record (JSON, discarded); "all" is both, as NewServer stacks them.
func BenchmarkOverhead(b *testing.B) {
	tp, err := tracing.NewProvider(b.Context(), tracing.Config{}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New(metrics.BuildInfo{})
	logger := logging.New(io.Discard, logging.FormatJSON, slog.LevelInfo)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		observe.SetRoute(r.Context(), "getLiveness", "/system-health/live")
		w.Write([]byte(`{"status":"ok"}`))
	})
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", requestid.Middleware(handler)},
		{"tracing", requestid.Middleware(tracing.Middleware(tp)(handler))},
		{"observe", requestid.Middleware(observe.Middleware(m, logger)(handler))},
		{"all", requestid.Middleware(tracing.Middleware(tp)(observe.Middleware(m, logger)(handler)))},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			r := httptest.NewRequest("GET", "/system-health/live", nil)
			for b.Loop() {
				c.h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
