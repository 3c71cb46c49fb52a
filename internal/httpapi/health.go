package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strings"

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
// problem listing every check.
func (s *server) GetReadiness(ctx context.Context, _ api.GetReadinessRequestObject) (api.GetReadinessResponseObject, error) {
	ok, checks := s.Checker.Ready(ctx)
	id := requestid.FromContext(ctx)
	if !ok {
		return api.GetReadiness503ApplicationProblemPlusJSONResponse{
			Body: api.ReadinessProblem{
				Type:          problem.TypeUnavailable,
				Title:         http.StatusText(http.StatusServiceUnavailable),
				Status:        http.StatusServiceUnavailable,
				Detail:        "not ready: " + failedChecks(checks),
				Instance:      "/system-health/ready",
				CorrelationId: id,
				Checks:        checks,
			},
			Headers: api.GetReadiness503ResponseHeaders{XRequestID: id},
		}, nil
	}
	return api.GetReadiness200JSONResponse{
		Body:    api.Readiness{Status: api.ReadinessStatusOk, Checks: checks},
		Headers: api.GetReadiness200ResponseHeaders{XRequestID: id},
	}, nil
}

// GetHealth reports overall status, version and uptime: 200 when every
// check passes, else a 503 problem with the same members.
func (s *server) GetHealth(ctx context.Context, _ api.GetHealthRequestObject) (api.GetHealthResponseObject, error) {
	ok, checks := s.Checker.Ready(ctx)
	id := requestid.FromContext(ctx)
	if !ok {
		return api.GetHealth503ApplicationProblemPlusJSONResponse{
			Body: api.HealthProblem{
				Type:          problem.TypeUnavailable,
				Title:         http.StatusText(http.StatusServiceUnavailable),
				Status:        http.StatusServiceUnavailable,
				Detail:        "degraded: " + failedChecks(checks),
				Instance:      "/system-health",
				CorrelationId: id,
				Version:       s.Checker.Version(),
				UptimeSeconds: s.Checker.Uptime().Seconds(),
				StartedAt:     s.Checker.StartedAt().UTC(),
				Checks:        checks,
			},
			Headers: api.GetHealth503ResponseHeaders{XRequestID: id},
		}, nil
	}
	return api.GetHealth200JSONResponse{
		Body: api.Health{
			Status:        api.HealthStatusOk,
			Version:       s.Checker.Version(),
			UptimeSeconds: s.Checker.Uptime().Seconds(),
			StartedAt:     s.Checker.StartedAt().UTC(),
			Checks:        checks,
		},
		Headers: api.GetHealth200ResponseHeaders{XRequestID: id},
	}, nil
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

// GetMetrics reports process counters and the database pool's gauges.
func (s *server) GetMetrics(ctx context.Context, _ api.GetMetricsRequestObject) (api.GetMetricsResponseObject, error) {
	stat := s.Pool.Stat()
	return api.GetMetrics200JSONResponse{
		Body: api.Metrics{
			UptimeSeconds:    s.Checker.Uptime().Seconds(),
			StartedAt:        s.Checker.StartedAt().UTC(),
			Version:          s.Checker.Version(),
			RequestsTotal:    s.Counters.Total(),
			RequestsInFlight: s.Counters.InFlight(),
			LogsWrittenTotal: s.Store.Written(),
			DbPool: api.PoolStats{
				TotalConns:    stat.TotalConns(),
				IdleConns:     stat.IdleConns(),
				AcquiredConns: stat.AcquiredConns(),
				MaxConns:      stat.MaxConns(),
			},
		},
		Headers: api.GetMetrics200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
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
