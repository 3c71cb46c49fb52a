package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/health"
	"github.com/valhalla-platform/valhalla/internal/logging"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/metrics"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// traced is a server assembled as serve does, on a fresh database, whose
// spans go to an in-memory exporter.
type traced struct {
	URL   string
	Spans *tracetest.InMemoryExporter
	Logs  *syncBuffer
	Token string
	// Handler is the server's handler, for requests sent without a client.
	Handler http.Handler
}

func setupTraced(t *testing.T) *traced {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	m := metrics.New(metrics.BuildInfo{Version: "test"})
	pool, err := database.Open(t.Context(), pgtest.NewDatabase(t), 10*time.Second, nil,
		database.WithTracerProvider(tp), database.WithAcquireTracer(m.AcquireTracer()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := database.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	m.ObservePool(pool)
	logs := &syncBuffer{}
	logger := logging.New(logs, logging.FormatJSON, slog.LevelInfo)
	tokens := auth.NewStore(pool)
	token, err := tokens.Create(t.Context(), "tracer", []string{"logs:write", "logs:read"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewServer(Deps{
		Store:          logstore.New(pool),
		Tokens:         tokens,
		Checker:        health.NewChecker("test", time.Second, logger, health.Check{Name: "database", Run: pool.Ping}),
		Metrics:        m,
		Logger:         logger,
		TracerProvider: tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if len(spans.GetSpans()) != 0 {
		t.Fatalf("spans before any request: %v", spans.GetSpans())
	}
	return &traced{URL: srv.URL, Spans: spans, Logs: logs, Token: token, Handler: h}
}

// post writes one entry with the given headers and returns it as stored.
func (tr *traced) post(t *testing.T, header ...string) api.SystemLog {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", tr.URL+"/system/logs", strings.NewReader(`{"message":"traced"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tr.Token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stored api.SystemLog
	if err := json.NewDecoder(resp.Body).Decode(&stored); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /system/logs: %d %v", resp.StatusCode, err)
	}
	return stored
}

// serverSpan waits for the request's server span (it ends as the response
// is sent) and returns it.
func (tr *traced) serverSpan(t *testing.T) tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, s := range tr.Spans.GetSpans() {
			if s.SpanKind == trace.SpanKindServer {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server span among %d spans", len(tr.Spans.GetSpans()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTraceparentJoinsTrace: a request with a sampled W3C traceparent gets a
// server span in that trace, child of the caller's span, whose children are
// the database spans of the insert; the stored row and the access log carry
// the same trace id.
func TestTraceparentJoinsTrace(t *testing.T) {
	t.Parallel()
	tr := setupTraced(t)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	stored := tr.post(t, "traceparent", "00-"+traceID+"-"+parentID+"-01", "tracestate", "vendor=opaque")

	server := tr.serverSpan(t)
	if server.Name != "POST /system/logs" || server.SpanContext.TraceID().String() != traceID ||
		server.Parent.SpanID().String() != parentID || !server.Parent.IsRemote() {
		t.Errorf("server span %q in trace %s, parent %s (remote %v); want POST /system/logs, child of %s in %s",
			server.Name, server.SpanContext.TraceID(), server.Parent.SpanID(), server.Parent.IsRemote(), parentID, traceID)
	}
	if ts := server.SpanContext.TraceState().String(); ts != "vendor=opaque" {
		t.Errorf("tracestate %q, want the caller's", ts)
	}
	if route := attr(server.Attributes, "http.route"); route != "/system/logs" {
		t.Errorf("http.route %q", route)
	}

	var insert *tracetest.SpanStub
	for _, s := range tr.Spans.GetSpans() {
		if s.SpanKind == trace.SpanKindClient && strings.Contains(attr(s.Attributes, "db.query.text"), "INSERT INTO system_logs") {
			insert = &s
		}
	}
	if insert == nil {
		t.Fatalf("no database span for the insert among %v", names(tr.Spans.GetSpans()))
	}
	if insert.SpanContext.TraceID() != server.SpanContext.TraceID() || insert.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("insert span in trace %s with parent %s, want a child of the server span %s",
			insert.SpanContext.TraceID(), insert.Parent.SpanID(), server.SpanContext.SpanID())
	}
	if attr(insert.Attributes, "db.system.name") != "postgresql" {
		t.Errorf("insert span attributes %v", insert.Attributes)
	}

	if stored.TraceId == nil || *stored.TraceId != traceID {
		t.Errorf("stored trace_id %v, want %s", stored.TraceId, traceID)
	}
	rec := tr.accessRecord(t)
	if rec["trace_id"] != traceID || rec["span_id"] != server.SpanContext.SpanID().String() {
		t.Errorf("access log trace_id %v span_id %v, want %s %s", rec["trace_id"], rec["span_id"], traceID, server.SpanContext.SpanID())
	}
}

// TestNewTraceWithoutTraceparent: without a traceparent the server span is
// the root of a new trace, and the database spans are its children.
func TestNewTraceWithoutTraceparent(t *testing.T) {
	t.Parallel()
	tr := setupTraced(t)
	stored := tr.post(t)
	server := tr.serverSpan(t)
	if server.Parent.IsValid() {
		t.Errorf("server span has parent %s, want a root", server.Parent.SpanID())
	}
	if stored.TraceId == nil || *stored.TraceId != server.SpanContext.TraceID().String() {
		t.Errorf("stored trace_id %v, want the new trace %s", stored.TraceId, server.SpanContext.TraceID())
	}
	children := 0
	for _, s := range tr.Spans.GetSpans() {
		if s.Parent.SpanID() == server.SpanContext.SpanID() && s.SpanKind == trace.SpanKindClient {
			children++
		}
	}
	if children == 0 {
		t.Errorf("no database span under the server span: %v", names(tr.Spans.GetSpans()))
	}
}

// TestUnsampledTraceparentRecordsNothing: a caller that decided not to
// sample gets no spans recorded (nor database spans), but the request still
// joins its trace.
func TestUnsampledTraceparentRecordsNothing(t *testing.T) {
	t.Parallel()
	tr := setupTraced(t)
	const traceID = "5b8efff798038103d269b633813fc60c"
	stored := tr.post(t, "traceparent", "00-"+traceID+"-eee19b7ec3c1b174-00")
	if stored.TraceId == nil || *stored.TraceId != traceID {
		t.Errorf("stored trace_id %v, want %s", stored.TraceId, traceID)
	}
	tr.accessRecord(t) // the request is over
	if spans := tr.Spans.GetSpans(); len(spans) != 0 {
		t.Errorf("recorded %v for an unsampled trace", names(spans))
	}
}

// accessRecord returns the one access log record.
func (tr *traced) accessRecord(t *testing.T) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(tr.Logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "request" {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access log record:\n%s", tr.Logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func attr(attrs []attribute.KeyValue, key string) string {
	for _, a := range attrs {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for the server and the test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestClientGoneIs499OnTheSpan: a request whose client has gone before it
// is answered is recorded as 499 on its span and in the access log, at
// info level, with no ERROR record and nothing written but the status.
func TestClientGoneIs499OnTheSpan(t *testing.T) {
	t.Parallel()
	tr := setupTraced(t)
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	req := httptest.NewRequest("GET", "/system/logs", nil).WithContext(gone)
	req.Header.Set("Authorization", "Bearer "+tr.Token)
	rec := httptest.NewRecorder()
	tr.Handler.ServeHTTP(rec, req)
	if rec.Code != 499 || rec.Body.Len() != 0 {
		t.Errorf("answered %d %q, want a bare 499", rec.Code, rec.Body)
	}
	span := tr.serverSpan(t)
	if got := attr(span.Attributes, "http.response.status_code"); got != "499" {
		t.Errorf("span status code %q, want 499", got)
	}
	access := tr.accessRecord(t)
	if access["status"] != float64(499) || access["level"] != "INFO" {
		t.Errorf("access log %v, want status 499 at INFO", access)
	}
	if strings.Contains(tr.Logs.String(), `"level":"ERROR"`) {
		t.Errorf("an ERROR record for a client that went away:\n%s", tr.Logs)
	}
}
