// Package tracing joins each request to a W3C trace with OpenTelemetry: an
// incoming traceparent (and tracestate) is honoured, otherwise a new trace
// starts. With an OTLP endpoint configured, the spans of requests and
// database queries are exported; without one, trace ids are still minted
// for logs, problems and stored rows, but no span is recorded.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// serviceName names this service in exported spans unless OTEL_SERVICE_NAME does.
const serviceName = "valhalla"

// Config is what NewProvider reads from the standard OTEL_* variables.
type Config struct {
	// Endpoint is the OTLP/HTTP URL spans are sent to, e.g.
	// http://collector:4318/v1/traces; empty exports nothing.
	Endpoint string
	// ServiceName names the service in exported spans.
	ServiceName string
}

// ConfigFromEnv reads the standard variables through getenv:
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL) or else
// OTEL_EXPORTER_OTLP_ENDPOINT (a base URL, to which /v1/traces is added);
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn export off;
// OTEL_SERVICE_NAME names the service. Only the http/protobuf protocol is
// supported: it returns an error when OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL
// asks for another, or when OTEL_TRACES_EXPORTER names an exporter other than otlp.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{ServiceName: serviceName}
	if name := getenv("OTEL_SERVICE_NAME"); name != "" {
		cfg.ServiceName = name
	}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return cfg, nil
	}
	switch exporter := getenv("OTEL_TRACES_EXPORTER"); exporter {
	case "none":
		return cfg, nil
	case "", "otlp":
	default:
		return cfg, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want otlp or none", exporter)
	}
	if endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); endpoint != "" {
		cfg.Endpoint = endpoint
	} else if base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); base != "" {
		cfg.Endpoint = strings.TrimRight(base, "/") + "/v1/traces"
	}
	if cfg.Endpoint == "" {
		return cfg, nil
	}
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if protocol != "" && protocol != "http/protobuf" {
		return cfg, fmt.Errorf("OTLP protocol %q: only http/protobuf is supported", protocol)
	}
	return cfg, nil
}

// NewProvider returns the tracer provider for cfg. With an endpoint, spans
// are batched and exported over OTLP/HTTP (sampled by the SDK's standard
// OTEL_TRACES_SAMPLER, by default following the caller's decision and
// sampling new traces). Without one, nothing is recorded or exported: spans
// still get ids, so each request has a trace id. Call Shutdown on the
// provider to flush spans before exiting.
// It returns an error when the endpoint is not a URL.
func NewProvider(ctx context.Context, cfg Config, version string) (*sdktrace.TracerProvider, error) {
	if cfg.Endpoint == "" {
		return sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())), nil
	}
	exporter, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter for %s: %w", cfg.Endpoint, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(version)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res)), nil
}

// Middleware starts a server span for each request, child of the incoming
// W3C traceparent (keeping its tracestate) when there is one, and puts it on
// the request's context. The span is named after the method until the
// route is known (see observe).
func Middleware(tp trace.TracerProvider) func(http.Handler) http.Handler {
	return otelhttp.NewMiddleware("http.server",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
	)
}

// TraceID returns the trace id of ctx's span as 32 hex digits, or "" when
// ctx has none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.TraceID().IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
