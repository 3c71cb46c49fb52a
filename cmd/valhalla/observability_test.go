package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/trace"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/metrics"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// TestPrometheusMetricsCount: a known sequence of requests moves each
// counter by exactly what was done, under the contract's operationIds (or
// "unmatched") and the status codes sent, and nothing else moves.
func TestPrometheusMetricsCount(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	before := scrape(t, srv)

	write(t, srv, api.SystemLogCreate{Message: "one"}, "")
	write(t, srv, api.SystemLogCreate{Message: "two", Level: ptr(api.LogLevel("WARNING"))}, "")
	srv.expect(t, 201, "POST", "/system/logs/batch", "application/json",
		strings.NewReader(`{"entries":[{"message":"a"},{"message":"b","level":"ERROR"},{"message":"c","level":"ERROR"}]}`))
	srv.expect(t, 422, "POST", "/system/logs", "application/json", strings.NewReader(`{"message":""}`))
	srv.expect(t, 422, "GET", "/system/logs?limit=0", "", nil)
	srv.expect(t, 404, "GET", "/no/such/route", "", nil)
	srv.expect(t, 405, "DELETE", "/system/logs", "", nil)
	srv.expect(t, 200, "GET", "/system-health/ready", "", nil)

	after := scrape(t, srv)
	wantRequests := map[string]float64{
		"code=201,operation=createSystemLog":      2,
		"code=201,operation=createSystemLogBatch": 1,
		"code=422,operation=createSystemLog":      1,
		"code=422,operation=listSystemLogs":       1,
		"code=404,operation=unmatched":            1,
		"code=405,operation=unmatched":            1,
		"code=200,operation=getReadiness":         1,
		"code=200,operation=getPrometheusMetrics": 1, // the first scrape
	}
	for _, name := range []string{"valhalla_http_requests_total", "valhalla_http_request_duration_seconds"} {
		if got := deltas(before, after, name); !maps.Equal(got, wantRequests) {
			t.Errorf("%s moved by %v, want %v", name, got, wantRequests)
		}
	}
	if got, want := deltas(before, after, "valhalla_logs_written_total"),
		map[string]float64{"level=INFO": 2, "level=WARNING": 1, "level=ERROR": 2}; !maps.Equal(got, want) {
		t.Errorf("logs written moved by %v, want %v", got, want)
	}
	if got, want := deltas(before, after, "valhalla_validation_failures_total"),
		map[string]float64{"operation=createSystemLog": 1, "operation=listSystemLogs": 1}; !maps.Equal(got, want) {
		t.Errorf("validation failures moved by %v, want %v", got, want)
	}
	// The second scrape is the one request in flight.
	if got := value(after, "valhalla_http_requests_in_flight"); got != 1 {
		t.Errorf("requests in flight %v, want 1", got)
	}

	// Every operation label is an operationId of the contract, or "unmatched".
	spec, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{metrics.Unmatched: true}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			known[op.OperationID] = true
		}
	}
	for _, m := range after["valhalla_http_requests_total"].GetMetric() {
		if op := label(m, "operation"); !known[op] {
			t.Errorf("operation label %q is not in the contract", op)
		}
	}

	if up := series(after, "valhalla_readiness_check_up"); up["check=database"] != 1 || up["check=shutdown"] != 1 {
		t.Errorf("readiness checks up %v, want database and shutdown at 1", up)
	}
	if _, ok := series(after, "valhalla_readiness_check_duration_seconds")["check=database"]; !ok {
		t.Error("no duration for the database readiness check")
	}
	build := after["valhalla_build_info"].GetMetric()
	if len(build) != 1 || build[0].GetGauge().GetValue() != 1 || label(build[0], "version") != version ||
		label(build[0], "goversion") != runtime.Version() || label(build[0], "revision") == "" {
		t.Errorf("build info %v", build)
	}

	open, idle, acquired := value(after, "valhalla_db_pool_open_connections"),
		value(after, "valhalla_db_pool_idle_connections"), value(after, "valhalla_db_pool_acquired_connections")
	if limit := value(after, "valhalla_db_pool_max_connections"); open < 1 || open > limit || idle+acquired > open {
		t.Errorf("pool: %v open, %v idle, %v acquired, %v max", open, idle, acquired, limit)
	}
	if d := value(after, "valhalla_db_pool_acquire_duration_seconds") - value(before, "valhalla_db_pool_acquire_duration_seconds"); d < 4 {
		t.Errorf("%v pool acquires timed, want one per statement (at least 4)", d)
	}
	// The two single writes were sent one after the other: two groups.
	if g := value(after, "valhalla_write_group_entries") - value(before, "valhalla_write_group_entries"); g != 2 {
		t.Errorf("%v write groups, want 2", g)
	}
	// Every acquire counts while it runs, the scrape's own and the
	// background's (the live tail's poller after a seal) included: an idle
	// server's gauge comes back to 0, and stays above only if one leaked.
	waitFor(t, 10*time.Second, "no acquire waiting on the idle server", func() (bool, string) {
		w := value(scrape(t, srv), "valhalla_db_pool_waiting_acquires")
		return w == 0, fmt.Sprint(w, " waiting")
	})
	if _, ok := after["valhalla_db_pool_empty_acquire_wait_seconds_total"]; !ok {
		t.Error("no empty-acquire wait time")
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_start_time_seconds"} {
		if value(after, name) <= 0 {
			t.Errorf("%s missing: the Go runtime and process collectors must be on", name)
		}
	}
}

// TestJSONMetricsAgreeWithPrometheus: /system-health/metrics reads the
// counters /metrics renders.
func TestJSONMetricsAgreeWithPrometheus(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	write(t, srv, api.SystemLogCreate{Message: "one"}, "")
	srv.do(t, "POST", "/system/logs/batch", "application/json", strings.NewReader(`{"entries":[{"message":"a","level":"DEBUG"}]}`))
	srv.do(t, "GET", "/nowhere", "", nil)

	resp, err := srv.Client.GetMetricsWithResponse(ctx(t), &api.GetMetricsParams{})
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("%v %s", err, resp.Body)
	}
	js := resp.JSON200
	prom := scrape(t, srv)
	// The JSON request itself has finished by the time of the scrape.
	if total := sum(prom, "valhalla_http_requests_total"); total != float64(js.RequestsTotal+1) {
		t.Errorf("Prometheus counts %v requests, JSON %d (+1 for the JSON request)", total, js.RequestsTotal)
	}
	if written := sum(prom, "valhalla_logs_written_total"); written != float64(js.LogsWrittenTotal) || written != 2 {
		t.Errorf("Prometheus counts %v entries written, JSON %d, want 2", written, js.LogsWrittenTotal)
	}
	if limit := value(prom, "valhalla_db_pool_max_connections"); limit != float64(js.DbPool.MaxConns) {
		t.Errorf("max connections: Prometheus %v, JSON %d", limit, js.DbPool.MaxConns)
	}
}

// TestAccessLog: one record per request, with the fields operators need,
// the request and trace ids from the context, and never a body or a token.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp, body := srv.do(t, "POST", "/system/logs", "application/json",
		strings.NewReader(`{"message":"body-text-never-logged","context":{"password":"hunter2"}}`),
		requestid.Header, "access-log-1",
		"traceparent", "00-"+traceID+"-"+parentID+"-01")
	mustStatus(t, 201, resp, body)
	srv.expect(t, 404, "GET", "/no/such/route", "", nil, requestid.Header, "access-log-2")

	rec := accessRecord(t, srv, "access-log-1")
	want := map[string]any{
		"level": "INFO", "method": "POST", "route": "createSystemLog", "path": "/system/logs",
		"status": float64(201), "bytes": float64(len(body)), "trace_id": traceID,
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("access log %s = %v, want %v", k, rec[k], v)
		}
	}
	if d, ok := rec["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("duration_ms %v", rec["duration_ms"])
	}
	if addr, _ := rec["remote_addr"].(string); !regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(addr) {
		t.Errorf("remote_addr %q", addr)
	}
	if span, _ := rec["span_id"].(string); !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(span) || span == parentID {
		t.Errorf("span_id %q, want the server's own span", span)
	}
	if rec["token_name"] != "bootstrap" {
		t.Errorf("token_name %v, want the name of the token that authenticated the request", rec["token_name"])
	}

	unmatched := accessRecord(t, srv, "access-log-2")
	if _, ok := unmatched["token_name"]; ok {
		t.Errorf("token_name %v on a request no token authenticated", unmatched["token_name"])
	}
	if unmatched["route"] != "unmatched" || unmatched["status"] != float64(404) || unmatched["path"] != "/no/such/route" {
		t.Errorf("unmatched route logged as %v", unmatched)
	}
	if trace, _ := unmatched["trace_id"].(string); !traceIDPattern.MatchString(trace) || trace == traceID {
		t.Errorf("request without traceparent logged trace_id %q, want a new trace", trace)
	}
	for _, secret := range []string{"body-text-never-logged", "hunter2", srv.Token} {
		if strings.Contains(srv.Output.String(), secret) {
			t.Errorf("%q is in the log", secret)
		}
	}
}

// TestTraceContext: an incoming traceparent is joined; without one (or with
// a malformed one) a new trace starts. The trace id is in problems, stored
// rows and the trace_id filter, next to the correlation id.
func TestTraceContext(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	srv := startServer(t, map[string]string{"DATABASE_URL": dbURL})
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	traceparent := []string{"traceparent", "00-" + traceID + "-b7ad6b7169203331-01", "tracestate", "vendor=opaque"}

	resp, body := srv.do(t, "POST", "/system/logs", "application/json", strings.NewReader(`{"message":"joined"}`),
		append(traceparent, requestid.Header, "corr-1")...)
	mustStatus(t, 201, resp, body)
	var one api.SystemLog
	decode(t, body, &one)
	if one.TraceId == nil || *one.TraceId != traceID || one.CorrelationId != "corr-1" {
		t.Errorf("stored trace_id %v, correlation_id %q; want %s and corr-1", one.TraceId, one.CorrelationId, traceID)
	}
	resp, body = srv.do(t, "POST", "/system/logs/batch", "application/json",
		strings.NewReader(`{"entries":[{"message":"a"},{"message":"b","correlation_id":"given"}]}`), traceparent...)
	mustStatus(t, 201, resp, body)
	var batch api.SystemLogBatch
	decode(t, body, &batch)
	for _, e := range batch.Items {
		if e.TraceId == nil || *e.TraceId != traceID {
			t.Errorf("batch entry trace_id %v, want %s", e.TraceId, traceID)
		}
	}
	resp, body = srv.do(t, "POST", "/system/logs", "application/json", strings.NewReader(`{"message":""}`), traceparent...)
	if p := problemOf(t, body); resp.StatusCode != 422 || p.TraceId == nil || *p.TraceId != traceID {
		t.Errorf("problem %d with trace_id %v, want 422 with %s", resp.StatusCode, p.TraceId, traceID)
	}

	// Without a traceparent, or with a malformed one, each request starts a trace.
	seen := map[string]bool{traceID: true}
	for _, header := range [][]string{nil, nil, {"traceparent", "00-not-a-trace-01"}, {"traceparent", "00-" + strings.Repeat("0", 32) + "-b7ad6b7169203331-01"}} {
		e := writeRaw(t, srv, `{"message":"fresh"}`, header...)
		if e.TraceId == nil || !traceIDPattern.MatchString(*e.TraceId) || seen[*e.TraceId] {
			t.Errorf("traceparent %v: trace_id %v, want a new trace", header, e.TraceId)
			continue
		}
		seen[*e.TraceId] = true
	}

	// An entry stored before trace ids were recorded has trace_id null.
	conn, err := pgx.Connect(ctx(t), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx(t))
	const oldID = "0192f0c5-6a6e-7d1c-9f5e-3b1a2c4d5e6f"
	if _, err := conn.Exec(ctx(t), `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, actor)
		VALUES ($1, now(), 'INFO', 'general', 'old', 'old-corr', 'old-actor')`, oldID); err != nil {
		t.Fatal(err)
	}
	resp, body = srv.do(t, "GET", "/system/logs/"+oldID, "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"trace_id":null`) {
		t.Errorf("old entry: %d %s, want trace_id null", resp.StatusCode, body)
	}

	list := list(t, srv, api.ListSystemLogsParams{TraceId: ptr(traceID), IncludeTotal: ptr(true)})
	if len(list.Items) != 3 || list.Total == nil || *list.Total != 3 {
		t.Fatalf("trace_id filter: %d items, total %v, want 3", len(list.Items), list.Total)
	}
	for _, e := range list.Items {
		if *e.TraceId != traceID {
			t.Errorf("filtered entry with trace_id %s", *e.TraceId)
		}
	}
	resp, body = srv.do(t, "GET", "/system/logs?trace_id=4BF92F3577B34DA6A3CE929D0E0E4736", "", nil)
	if p := problemOf(t, body); resp.StatusCode != 422 || p.Errors == nil || (*p.Errors)[0].Parameter == nil ||
		*(*p.Errors)[0].Parameter != "trace_id" {
		t.Errorf("uppercase trace_id filter: %d %s, want 422 naming trace_id", resp.StatusCode, body)
	}
}

// TestClientPropagates: the Go client sends its context's trace and
// correlation ids, so the server joins them.
func TestClientPropagates(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	traceID, err := trace.TraceIDFromHex("5b8efff798038103d269b633813fc60c")
	if err != nil {
		t.Fatal(err)
	}
	spanID, err := trace.SpanIDFromHex("eee19b7ec3c1b174")
	if err != nil {
		t.Fatal(err)
	}
	c := trace.ContextWithSpanContext(requestid.NewContext(ctx(t), "from-client-ctx"),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true}))

	created, err := srv.Client.CreateSystemLogWithResponse(c, &api.CreateSystemLogParams{}, api.SystemLogCreate{Message: "via client"})
	if err != nil || created.JSON201 == nil {
		t.Fatalf("%v %s", err, created.Body)
	}
	got := created.JSON201
	if got.CorrelationId != "from-client-ctx" || got.TraceId == nil || *got.TraceId != traceID.String() ||
		created.HTTPResponse.Header.Get(requestid.Header) != "from-client-ctx" {
		t.Errorf("stored correlation_id %q, trace_id %v; want the client's", got.CorrelationId, got.TraceId)
	}
	// An id given in the call's parameters wins over the context's.
	created, err = srv.Client.CreateSystemLogWithResponse(c, &api.CreateSystemLogParams{XRequestID: ptr("explicit-id")},
		api.SystemLogCreate{Message: "explicit"})
	if err != nil || created.JSON201 == nil || created.JSON201.CorrelationId != "explicit-id" ||
		*created.JSON201.TraceId != traceID.String() {
		t.Errorf("explicit id: %v %s", err, created.Body)
	}
}

// scrape gets /metrics (checked against the contract like every response)
// and parses the exposition.
func scrape(t *testing.T, srv *instance) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := srv.do(t, "GET", "/metrics", "", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != metrics.ContentType {
		t.Fatalf("/metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v\n%s", err, body)
	}
	return families
}

// series maps each series of a family to its value (a histogram's sample
// count), keyed by its labels as "a=x,b=y" in name order.
func series(families map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range families[name].GetMetric() {
		var key []string
		for _, l := range m.GetLabel() {
			key = append(key, l.GetName()+"="+l.GetValue())
		}
		slices.Sort(key)
		out[strings.Join(key, ",")] = float64(m.GetHistogram().GetSampleCount()) +
			m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return out
}

// deltas returns how each series of a family moved, leaving out those that did not.
func deltas(before, after map[string]*dto.MetricFamily, name string) map[string]float64 {
	was := series(before, name)
	out := map[string]float64{}
	for k, v := range series(after, name) {
		if d := v - was[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// value is the value of a family's one unlabelled series, or 0.
func value(families map[string]*dto.MetricFamily, name string) float64 {
	return series(families, name)[""]
}

// sum adds up every series of a family.
func sum(families map[string]*dto.MetricFamily, name string) float64 {
	total := 0.0
	for _, v := range series(families, name) {
		total += v
	}
	return total
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// accessRecord returns the one access log record of the request with id.
func accessRecord(t *testing.T, srv *instance, id string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, line := range strings.Split(srv.Output.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "request" && rec["request_id"] == id {
			found = append(found, rec)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d access log records for %s, want 1:\n%s", len(found), id, srv.Output)
	}
	return found[0]
}

// writeRaw posts one entry with extra headers and returns it as stored.
func writeRaw(t *testing.T, srv *instance, body string, header ...string) api.SystemLog {
	t.Helper()
	resp, raw := srv.do(t, "POST", "/system/logs", "application/json", strings.NewReader(body), header...)
	mustStatus(t, 201, resp, raw)
	var e api.SystemLog
	decode(t, raw, &e)
	return e
}

// expect sends a raw request, like do, and fails the test unless the
// response has status want. It returns the body.
func (in *instance) expect(t *testing.T, want int, method, path, contentType string, body io.Reader, header ...string) []byte {
	t.Helper()
	resp, raw := in.do(t, method, path, contentType, body, header...)
	mustStatus(t, want, resp, raw)
	return raw
}

func mustStatus(t *testing.T, want int, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, body)
	}
}

func decode(t *testing.T, body []byte, into any) {
	t.Helper()
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
}
