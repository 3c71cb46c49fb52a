package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      map[string]string
		endpoint string
		service  string
		err      bool
	}{
		{"nothing set: no exporter", nil, "", "valhalla", false},
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
			"http://collector:4318/v1/traces", "valhalla", false},
		{"traces endpoint wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/custom"}, "https://b/custom", "valhalla", false},
		{"service name", map[string]string{"OTEL_SERVICE_NAME": "audit-eu"}, "", "audit-eu", false},
		{"SDK disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"},
			"", "valhalla", false},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"},
			"", "valhalla", false},
		{"http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"},
			"http://a:4318/v1/traces", "valhalla", false},
		{"grpc is refused", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317"},
			"", "", true},
		{"zipkin is refused", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "", "", true},
	}
	for _, tt := range tests {
		cfg, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
		if tt.err {
			if err == nil {
				t.Errorf("%s: no error", tt.name)
			}
			continue
		}
		if err != nil || cfg.Endpoint != tt.endpoint || cfg.ServiceName != tt.service {
			t.Errorf("%s: %+v, %v; want endpoint %q, service %q", tt.name, cfg, err, tt.endpoint, tt.service)
		}
	}
}

// TestNoEndpointRecordsNothing: without an exporter, spans get ids (so
// requests have a trace id) but are not recorded.
func TestNoEndpointRecordsNothing(t *testing.T) {
	t.Parallel()
	tp, err := NewProvider(t.Context(), Config{ServiceName: "valhalla"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tp.Tracer("test").Start(t.Context(), "request")
	defer span.End()
	if span.IsRecording() || !span.SpanContext().IsValid() || TraceID(ctx) == "" {
		t.Errorf("span recording %v, context valid %v, trace id %q", span.IsRecording(), span.SpanContext().IsValid(), TraceID(ctx))
	}
	if TraceID(context.Background()) != "" {
		t.Error("a trace id without a span")
	}
}

// TestExportsOverOTLP: with an endpoint, ended spans reach it over
// OTLP/HTTP, named after the service, by the time the provider shuts down.
func TestExportsOverOTLP(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		received []*collectortrace.ExportTraceServiceRequest
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
			t.Errorf("collector got %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		received = append(received, &req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()

	cfg, err := ConfigFromEnv(func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_SERVICE_NAME": "valhalla-test"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := NewProvider(t.Context(), cfg, "v9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(t.Context(), "GET /system-health")
	span.End()
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	var spans []string
	service := ""
	for _, req := range received {
		for _, rs := range req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans = append(spans, s.GetName())
				}
			}
		}
	}
	if len(spans) != 1 || spans[0] != "GET /system-health" || service != "valhalla-test" {
		t.Errorf("collector received spans %v from service %q", spans, service)
	}
}
