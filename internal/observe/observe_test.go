package observe_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/valhalla-platform/valhalla/internal/logging"
	"github.com/valhalla-platform/valhalla/internal/metrics"
	"github.com/valhalla-platform/valhalla/internal/observe"
)

// TestAccessLogNamesTokenNotToken: the authentication hook puts the token's
// name on the access log record; the route, status and bytes are the ones
// noted and sent.
func TestAccessLogNamesTokenNotToken(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	m := metrics.New(metrics.BuildInfo{})
	h := observe.Middleware(m, logging.New(&out, logging.FormatJSON, slog.LevelInfo))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			observe.SetRoute(r.Context(), "getSystemLog", "/system/logs/{id}")
			observe.SetTokenName(r.Context(), "ci-deployer") // as an auth middleware would
			if op := observe.Operation(r.Context()); op != "getSystemLog" {
				t.Errorf("Operation = %q inside the request", op)
			}
			w.Write([]byte("hello"))
		}))
	r := httptest.NewRequest("GET", "/system/logs/0192f0c5-6a6e-7d1c-9f5e-3b1a2c4d5e6f", nil)
	r.Header.Set("Authorization", "Bearer s3cr3t")
	h.ServeHTTP(httptest.NewRecorder(), r)

	var rec map[string]any
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	want := map[string]any{"msg": "request", "route": "getSystemLog", "status": float64(200),
		"bytes": float64(5), "token_name": "ci-deployer", "method": "GET"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v", k, rec[k], v)
		}
	}
	if bytes.Contains(out.Bytes(), []byte("s3cr3t")) {
		t.Errorf("the token is in the log: %s", out.String())
	}
	if snap := m.Snapshot(); snap.RequestsTotal != 1 || snap.RequestsInFlight != 0 {
		t.Errorf("snapshot %+v, want 1 request, none in flight", snap)
	}
}

// TestOutsideMiddleware: the setters do nothing and the operation is unmatched.
func TestOutsideMiddleware(t *testing.T) {
	t.Parallel()
	ctx := httptest.NewRequest("GET", "/", nil).Context()
	observe.SetRoute(ctx, "getHealth", "/system-health")
	observe.SetTokenName(ctx, "x")
	if op := observe.Operation(ctx); op != metrics.Unmatched {
		t.Errorf("Operation = %q, want %q", op, metrics.Unmatched)
	}
}
