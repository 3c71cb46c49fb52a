package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	valhalla "github.com/valhalla-platform/valhalla"
	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestLiveness(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	resp, err := srv.Client.GetLivenessWithResponse(ctx(t), &api.GetLivenessParams{})
	if err != nil || resp.JSON200 == nil || resp.JSON200.Status != "ok" {
		t.Fatalf("%v %s", err, resp.Body)
	}
}

func TestReadinessChecksDatabase(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	resp, err := srv.Client.GetReadinessWithResponse(ctx(t), &api.GetReadinessParams{})
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body)
	}
	if resp.JSON200.Readiness != api.Ready || check(resp.JSON200.Checks, "database") == nil ||
		check(resp.JSON200.Checks, "database").Status != "ok" {
		t.Errorf("readiness %+v", resp.JSON200)
	}
}

// TestOverallHealth: the original health endpoint reports status, version and uptime.
func TestOverallHealth(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	resp, err := srv.Client.GetHealthWithResponse(ctx(t), &api.GetHealthParams{})
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("%v %s", err, resp.Body)
	}
	h := resp.JSON200
	if h.Health != api.HealthOutcomeOk || h.Version != version || h.UptimeSeconds <= 0 || time.Since(h.StartedAt) > time.Minute {
		t.Errorf("health %+v", h)
	}
}

// TestMetricsCount: requests and writes move the counters by exactly what
// was done, and the pool gauges are sane.
func TestMetricsCount(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	metrics := func() api.Metrics {
		resp, err := srv.Client.GetMetricsWithResponse(ctx(t), &api.GetMetricsParams{})
		if err != nil || resp.JSON200 == nil {
			t.Fatalf("%v %s", err, resp.Body)
		}
		return *resp.JSON200
	}
	before := metrics()
	write(t, srv, api.SystemLogCreate{Message: "one"}, "")
	srv.do(t, "POST", "/system/logs/batch", "application/json", strings.NewReader(`{"entries":[{"message":"a"},{"message":"b"}]}`))
	srv.do(t, "POST", "/system/logs", "application/json", strings.NewReader(`{"message":""}`)) // rejected: not written
	after := metrics()
	if d := after.LogsWrittenTotal - before.LogsWrittenTotal; d != 3 {
		t.Errorf("logs_written_total moved by %d, want 3", d)
	}
	// Counted: the first metrics call, three writes; the second call is in flight.
	if d := after.RequestsTotal - before.RequestsTotal; d != 4 {
		t.Errorf("requests_total moved by %d, want 4", d)
	}
	if after.RequestsInFlight != 1 {
		t.Errorf("requests_in_flight %d, want 1 (this request)", after.RequestsInFlight)
	}
	p := after.DbPool
	if p.MaxConns < 1 || p.TotalConns < 1 || p.TotalConns != p.IdleConns+p.AcquiredConns+p.ConstructingConns || p.TotalConns > p.MaxConns {
		t.Errorf("pool %+v", p)
	}
	if after.UptimeSeconds < before.UptimeSeconds || after.Version != version {
		t.Errorf("uptime %v then %v, version %q", before.UptimeSeconds, after.UptimeSeconds, after.Version)
	}
}

// TestServesItsContract: /openapi.yaml is the file byte for byte and
// /openapi.json the same document.
func TestServesItsContract(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	resp, body := srv.do(t, "GET", "/openapi.yaml", "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, valhalla.OpenAPIYAML) || resp.Header.Get("Content-Type") != "application/yaml" {
		t.Errorf("openapi.yaml: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	resp, body = srv.do(t, "GET", "/openapi.json", "", nil)
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("openapi.json: %d %v", resp.StatusCode, err)
	}
	spec, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" || len(doc.Paths) != spec.Paths.Len() {
		t.Errorf("openapi.json: version %q, %d paths, want 3.0.3 and %d", doc.OpenAPI, len(doc.Paths), spec.Paths.Len())
	}
}

// TestDatabaseOutage: with PostgreSQL stopped, readiness and log endpoints
// answer 503 (with Retry-After), liveness stays 200; when it is back,
// everything recovers without a restart.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	if err := cluster.CreateDatabase(ctx(t), "outage"); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, map[string]string{"DATABASE_URL": cluster.ConnString("outage")})
	write(t, srv, api.SystemLogCreate{Message: "before"}, "")

	if err := cluster.StopServer(ctx(t)); err != nil {
		t.Fatal(err)
	}
	ready, err := srv.Client.GetReadinessWithResponse(ctx(t), &api.GetReadinessParams{})
	if err != nil || ready.ApplicationproblemJSON503 == nil {
		t.Fatalf("readiness with the database down: %v %d %s", err, ready.StatusCode(), ready.Body)
	}
	if c := check(ready.ApplicationproblemJSON503.Checks, "database"); c == nil || c.Status != "fail" || c.Error == nil {
		t.Errorf("database check %+v", c)
	}
	if p := ready.ApplicationproblemJSON503; p.Readiness != api.NotReady || p.Status != 503 || p.Instance != "/system-health/ready" ||
		ready.HTTPResponse.Header.Get("Retry-After") == "" {
		t.Errorf("readiness 503: readiness %q, status %d, instance %q, Retry-After %q", p.Readiness, p.Status, p.Instance,
			ready.HTTPResponse.Header.Get("Retry-After"))
	}
	health, err := srv.Client.GetHealthWithResponse(ctx(t), &api.GetHealthParams{})
	if err != nil || health.ApplicationproblemJSON503 == nil || health.ApplicationproblemJSON503.Version != version {
		t.Fatalf("health with the database down: %v %d %s", err, health.StatusCode(), health.Body)
	}
	if p := health.ApplicationproblemJSON503; p.Health != api.HealthOutcomeDegraded || p.Status != 503 || p.Instance != "/system-health" ||
		health.HTTPResponse.Header.Get("Retry-After") == "" {
		t.Errorf("health 503: health %q, status %d, instance %q, Retry-After %q", p.Health, p.Status, p.Instance,
			health.HTTPResponse.Header.Get("Retry-After"))
	}
	live, err := srv.Client.GetLivenessWithResponse(ctx(t), &api.GetLivenessParams{})
	if err != nil || live.StatusCode() != 200 {
		t.Errorf("liveness with the database down: %v %d", err, live.StatusCode())
	}
	created, err := srv.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{}, api.SystemLogCreate{Message: "during"})
	if err != nil || created.ApplicationproblemJSON503 == nil {
		t.Fatalf("write with the database down: %v %d %s", err, created.StatusCode(), created.Body)
	}
	if created.HTTPResponse.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if strings.Contains(string(created.Body), "/tmp") || strings.Contains(string(created.Body), "dial") {
		t.Errorf("503 leaks internals: %s", created.Body)
	}
	listed, err := srv.Client.ListSystemLogsWithResponse(ctx(t), &api.ListSystemLogsParams{})
	if err != nil || listed.StatusCode() != http.StatusServiceUnavailable {
		t.Errorf("list with the database down: %v %d", err, listed.StatusCode())
	}
	if !strings.Contains(srv.Output.String(), created.HTTPResponse.Header.Get("X-Request-ID")) {
		t.Error("the 503 was not logged with its request id")
	}

	if err := cluster.StartServer(ctx(t)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready, err = srv.Client.GetReadinessWithResponse(ctx(t), &api.GetReadinessParams{})
		if err == nil && ready.StatusCode() == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness did not recover: %v %d %s", err, ready.StatusCode(), ready.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	write(t, srv, api.SystemLogCreate{Message: "after"}, "")
	if got := messages(list(t, srv, api.ListSystemLogsParams{}).Items); strings.Join(got, ",") != "after,before" {
		t.Errorf("entries after the outage: %v", got)
	}
}

func check(checks []api.Check, name string) *api.Check {
	for i := range checks {
		if checks[i].Name == name {
			return &checks[i]
		}
	}
	return nil
}
