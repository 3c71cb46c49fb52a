// Package httpapi assembles Valhalla's HTTP surface: every route and every
// middleware is listed in NewServer, and the generated strict server
// interface is implemented by thin methods that map requests to store calls.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/contract"
	"github.com/valhalla-platform/valhalla/internal/health"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/metrics"
	"github.com/valhalla-platform/valhalla/internal/observe"
	"github.com/valhalla-platform/valhalla/internal/ratelimit"
	"github.com/valhalla-platform/valhalla/internal/requestid"
	"github.com/valhalla-platform/valhalla/internal/tracing"
)

// Body size limits: one entry, and a batch of up to 1000.
const (
	MaxBodyBytes      = 1 << 20
	MaxBatchBodyBytes = 16 << 20
)

// Deps are what the server needs; all are required.
type Deps struct {
	Store   *logstore.Store
	Tokens  *auth.Store
	Checker *health.Checker
	Metrics *metrics.Metrics
	// Logger's handler should add the ids on the context to each record,
	// as logging.New's does.
	Logger *slog.Logger
	// TracerProvider starts each request's span (tracing.NewProvider).
	TracerProvider trace.TracerProvider
	// Limits bound what clients can make the server hold; zero fields
	// take their defaults.
	Limits Limits
	// MetricsApart serves /metrics only through MetricsHandler (on an
	// address of its own) and answers it 404 on the API.
	MetricsApart bool
}

type metricsListenerKey struct{}

// MetricsHandler serves /metrics through h (a NewServer handler whose
// Deps set MetricsApart), and answers every other path 404.
func MetricsHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), metricsListenerKey{}, true)))
	})
}

// metricsApart answers /metrics 404 on the API, and every other path 404
// on the metrics address, when MetricsApart is set.
func (s *server) metricsApart(next http.Handler) http.Handler {
	if !s.MetricsApart {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		onMetrics := r.Context().Value(metricsListenerKey{}) != nil
		if (r.URL.Path == "/metrics") != onMetrics {
			s.notFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Limits bound what clients can make the server hold.
type Limits struct {
	// BodyBudget bounds the request body bytes all requests hold at once
	// (DefaultBodyBudget when zero); past it requests get a 503.
	BodyBudget int64
	// Token is what each token may do on this server, unless the token
	// overrides it; Address is what each client address may do without a
	// valid token. A zero field does not limit; over a limit is a 429.
	Token, Address ratelimit.Policy
	// MaxHeaderBytes bounds a request's line and header fields, as
	// HeaderBytes counts them; over it is a 431 problem. Zero does not
	// limit. The http.Server must accept more (net/http answers a block
	// over its own MaxHeaderBytes itself, in plain text).
	MaxHeaderBytes int
}

// Default rate and concurrency limits, per server: generous for a token
// (an operator tightens them, or sets one token's with tokens create),
// tight for strangers.
var (
	DefaultTokenPolicy   = ratelimit.Policy{Requests: 10_000, Entries: 50_000, InFlight: 64}
	DefaultAddressPolicy = ratelimit.Policy{Requests: 200, InFlight: 32}
)

// DefaultBodyBudget is the body budget when Limits leaves it zero: two
// largest batches at once. A body costs some times its size while it is
// decoded and validated, so the budget bounds the server's memory.
const DefaultBodyBudget = 2 * MaxBatchBodyBytes

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.BodyBudget <= 0 {
		l.BodyBudget = DefaultBodyBudget
	}
	return l
}

// DefaultLimits returns the limits a server has unless configured: the
// body budget and the default policies.
func DefaultLimits() Limits {
	return Limits{BodyBudget: DefaultBodyBudget, Token: DefaultTokenPolicy, Address: DefaultAddressPolicy}
}

// server implements api.StrictServerInterface.
type server struct {
	Deps
	openapiJSON []byte
	limiter     *ratelimit.Limiter
}

var _ api.StrictServerInterface = (*server)(nil)

// NewServer returns the whole HTTP surface. Middleware, outermost first:
// correlation id (so every response, panics included, carries it); trace
// context (joining the caller's W3C trace or starting one); observation
// (metrics, span name and one access log record per request); the header
// size limit, before anything reads the headers; with MetricsApart, the
// split between the API and the metrics address; panic recovery; the slot
// for the authenticated caller; the rate and concurrency limits (per address for a request without a token; per
// token once the validator has authenticated it); contract validation
// (which notes each request's operation for the observer, and authenticates
// and authorizes the caller of a secured operation through its hook, with
// the scopes the contract names); then the routes the generated code
// registers for each operation in openapi.yaml.
// It returns an error when the embedded contract cannot be loaded.
func NewServer(d Deps) (http.Handler, error) {
	d.Limits = d.Limits.withDefaults()
	s := &server{Deps: d, limiter: ratelimit.New()}
	validator, err := contract.New(MaxBodyBytes, map[string]int64{
		"createSystemLogBatch": MaxBatchBodyBytes,
	}, s.authenticate, contract.WithBodyBudget(contract.NewBodyBudget(d.Limits.BodyBudget)))
	if err != nil {
		return nil, err
	}
	s.openapiJSON = validator.JSON()

	mux := http.NewServeMux()
	// The validator answers unknown routes first; this is the backstop.
	mux.HandleFunc("/", s.notFound)
	strict := api.NewStrictHandlerWithOptions(s, nil, api.StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  s.bodyDecodeError,
		ResponseErrorHandlerFunc: s.writeError,
	})
	api.HandlerWithOptions(strict, api.StdHTTPServerOptions{
		BaseRouter:       mux,
		ErrorHandlerFunc: s.parameterError,
	})

	var h http.Handler = mux
	h = validator.Middleware(s.writeError)(h)
	h = s.limitRequests(h)
	h = auth.Middleware(h)
	h = s.recoverPanics(h)
	h = s.metricsApart(h)
	h = s.limitHeaders(h)
	h = observe.Middleware(d.Metrics, d.Logger)(h)
	h = tracing.Middleware(d.TracerProvider)(h)
	h = requestid.Middleware(h)
	return h, nil
}
