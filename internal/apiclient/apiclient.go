// Package apiclient builds the generated Go client (gen/api) so that every
// call carries the caller's trace context (W3C traceparent and tracestate)
// and correlation id (X-Request-ID), taken from the call's context: a
// service calling Valhalla while serving a request joins the two logs and
// traces without passing ids by hand.
package apiclient

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// New returns the generated client for the server at url, with propagate
// applied to each request before any editor in opts, and reads answered
// 429 retried after their Retry-After (see retryTransport) unless opts
// give an HTTP client of their own.
// It returns an error when url is not a valid server URL.
func New(url string, opts ...api.ClientOption) (*api.ClientWithResponses, error) {
	base := []api.ClientOption{
		api.WithHTTPClient(&http.Client{Transport: retryTransport{base: http.DefaultTransport}}),
		api.WithRequestEditorFn(propagate),
	}
	return api.NewClientWithResponses(url, append(base, opts...)...)
}

// propagate writes ctx's span context to req as traceparent and tracestate,
// and ctx's correlation id (requestid.NewContext) as X-Request-ID unless
// req already has one (from the call's parameters). A context with neither
// leaves req as it is. It never fails; its signature is api.RequestEditorFn's.
func propagate(ctx context.Context, req *http.Request) error {
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	if id := requestid.FromContext(ctx); id != "" && req.Header.Get(requestid.Header) == "" {
		req.Header.Set(requestid.Header, id)
	}
	return nil
}
