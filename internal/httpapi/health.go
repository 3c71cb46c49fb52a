package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"time"

	valhalla "github.com/valhalla-platform/valhalla"
	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/problem"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// GetLiveness answers that the process serves; it checks nothing external.
func (s *server) GetLiveness(ctx context.Context, _ api.GetLivenessRequestObject) (api.GetLivenessResponseObject, error) {
	return api.GetLiveness200JSONResponse{
		Body:    api.Liveness{Status: api.LivenessStatusOk},
		Headers: api.GetLiveness200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

// GetReadiness runs every readiness check: 200 when all pass, else a 503
// problem listing every check, with Retry-After.
func (s *server) GetReadiness(ctx context.Context, _ api.GetReadinessRequestObject) (api.GetReadinessResponseObject, error) {
	ok, checks := s.ready(ctx)
	id := requestid.FromContext(ctx)
	if !ok {
		p := unavailable(ctx, "not ready: "+failedChecks(checks))
		return api.GetReadiness503ApplicationProblemPlusJSONResponse{
			Body: api.ReadinessProblem{
				Type:          p.Type,
				Title:         p.Title,
				Status:        p.Status,
				Detail:        p.Detail,
				Instance:      p.Instance,
				CorrelationId: p.CorrelationId,
				TraceId:       p.TraceId,
				Readiness:     api.NotReady,
				Checks:        checks,
			},
			Headers: api.GetReadiness503ResponseHeaders{XRequestID: id, RetryAfter: retryAfterSeconds},
		}, nil
	}
	return api.GetReadiness200JSONResponse{
		Body:    api.Readiness{Readiness: api.Ready, Checks: checks},
		Headers: api.GetReadiness200ResponseHeaders{XRequestID: id},
	}, nil
}

// GetHealth reports overall status, version and uptime: 200 when every
// check passes, else a 503 problem with the same members.
func (s *server) GetHealth(ctx context.Context, _ api.GetHealthRequestObject) (api.GetHealthResponseObject, error) {
	ok, checks := s.Checker.Health(ctx)
	s.observeChecks(checks)
	id := requestid.FromContext(ctx)
	if !ok {
		p := unavailable(ctx, "degraded: "+failedChecks(checks))
		return api.GetHealth503ApplicationProblemPlusJSONResponse{
			Body: api.HealthProblem{
				Type:          p.Type,
				Title:         p.Title,
				Status:        p.Status,
				Detail:        p.Detail,
				Instance:      p.Instance,
				CorrelationId: p.CorrelationId,
				TraceId:       p.TraceId,
				Health:        api.HealthOutcomeDegraded,
				Version:       s.Checker.Version(),
				UptimeSeconds: s.Checker.Uptime().Seconds(),
				StartedAt:     s.Checker.StartedAt().UTC(),
				Checks:        checks,
			},
			Headers: api.GetHealth503ResponseHeaders{XRequestID: id, RetryAfter: retryAfterSeconds},
		}, nil
	}
	return api.GetHealth200JSONResponse{
		Body: api.Health{
			Health:        api.HealthOutcomeOk,
			Version:       s.Checker.Version(),
			UptimeSeconds: s.Checker.Uptime().Seconds(),
			StartedAt:     s.Checker.StartedAt().UTC(),
			Checks:        checks,
		},
		Headers: api.GetHealth200ResponseHeaders{XRequestID: id},
	}, nil
}

// unavailable returns the members of the 503 problem the health endpoints
// answer, for the request on ctx, as problem.Write would send them.
func unavailable(ctx context.Context, detail string) api.ProblemDetails {
	return problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, detail).Body(requestFrom(ctx))
}

// ready runs the readiness checks and records each outcome in the metrics.
func (s *server) ready(ctx context.Context) (bool, []api.Check) {
	ok, checks := s.Checker.Ready(ctx)
	s.observeChecks(checks)
	return ok, checks
}

// observeChecks records each check's outcome in the metrics.
func (s *server) observeChecks(checks []api.Check) {
	for _, c := range checks {
		s.Metrics.ObserveCheck(c.Name, c.Status == api.CheckStatusOk,
			time.Duration(c.DurationMs*float64(time.Millisecond)))
	}
}

// failedChecks names the checks that failed, e.g. "database check failed".
func failedChecks(checks []api.Check) string {
	var failed []string
	for _, c := range checks {
		if c.Status != api.CheckStatusOk {
			failed = append(failed, c.Name)
		}
	}
	return strings.Join(failed, ", ") + " check failed"
}

// GetMetrics reports process counters and the database pool's gauges, read
// from the counters behind GetPrometheusMetrics.
func (s *server) GetMetrics(ctx context.Context, _ api.GetMetricsRequestObject) (api.GetMetricsResponseObject, error) {
	snap := s.Metrics.Snapshot()
	return api.GetMetrics200JSONResponse{
		Body: api.Metrics{
			UptimeSeconds:    s.Checker.Uptime().Seconds(),
			StartedAt:        s.Checker.StartedAt().UTC(),
			Version:          s.Checker.Version(),
			RequestsTotal:    snap.RequestsTotal,
			RequestsInFlight: snap.RequestsInFlight,
			LogsWrittenTotal: snap.LogsWrittenTotal,
			DbPool: api.PoolStats{
				TotalConns:        snap.Pool.TotalConns,
				IdleConns:         snap.Pool.IdleConns,
				AcquiredConns:     snap.Pool.AcquiredConns,
				ConstructingConns: snap.Pool.ConstructingConns,
				MaxConns:          snap.Pool.MaxConns,
			},
		},
		Headers: api.GetMetrics200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

// GetPrometheusMetrics serves every metric in the Prometheus text format.
func (s *server) GetPrometheusMetrics(ctx context.Context, _ api.GetPrometheusMetricsRequestObject) (api.GetPrometheusMetricsResponseObject, error) {
	var buf bytes.Buffer
	if err := s.Metrics.WriteText(&buf); err != nil {
		return nil, err
	}
	return api.GetPrometheusMetrics200TextplainVersion004Response{
		Body:          &buf,
		ContentLength: int64(buf.Len()),
		Headers:       api.GetPrometheusMetrics200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

// GetOpenAPIYAML serves the embedded contract byte for byte.
func (s *server) GetOpenAPIYAML(ctx context.Context, _ api.GetOpenAPIYAMLRequestObject) (api.GetOpenAPIYAMLResponseObject, error) {
	return api.GetOpenAPIYAML200ApplicationyamlResponse{
		Body:          bytes.NewReader(valhalla.OpenAPIYAML),
		ContentLength: int64(len(valhalla.OpenAPIYAML)),
		Headers:       api.GetOpenAPIYAML200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

// GetOpenAPIJSON serves the embedded contract as JSON.
func (s *server) GetOpenAPIJSON(ctx context.Context, _ api.GetOpenAPIJSONRequestObject) (api.GetOpenAPIJSONResponseObject, error) {
	return api.GetOpenAPIJSON200JSONResponse{
		Body:    s.openapiJSON,
		Headers: api.GetOpenAPIJSON200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}
