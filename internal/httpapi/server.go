// Package httpapi assembles Valhalla's HTTP surface: every route and every
// middleware is listed in NewServer, and the generated strict server
// interface is implemented by thin methods that map requests to store calls.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/contract"
	"github.com/valhalla-platform/valhalla/internal/follow"
	"github.com/valhalla-platform/valhalla/internal/health"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/metrics"
	"github.com/valhalla-platform/valhalla/internal/observe"
	"github.com/valhalla-platform/valhalla/internal/pages"
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
	Store *logstore.Store
	// Ledger serves checkpoints and proofs.
	Ledger *ledger.Reader
	// Follow fans the feed out to live streams (follow.New with
	// EncodeEntry; its Run must be running).
	Follow *follow.Hub
	// SealInterval is the sequencer's interval, for Retry-After.
	SealInterval time.Duration
	Tokens       *auth.Store
	Checker      *health.Checker
	Metrics      *metrics.Metrics
	// Logger's handler should add the ids on the context to each record,
	// as logging.New's does.
	Logger *slog.Logger
	// TracerProvider starts each request's span (tracing.NewProvider).
	TracerProvider trace.TracerProvider
	// FrameAncestors are the origins allowed to embed the pages in a
	// frame; none when empty.
	FrameAncestors []string
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

// DefaultReadRate is the bytes of listing and feed pages a token may read
// per second: four of the largest pages, or about 35,000 entries of the
// usual size. Reading pages of the largest entries as fast as the server
// could serve them (57 MiB/s from one client) took an honest client's p99
// from 2.3 to 7.8 ms on the 2-core machine; 16 MiB/s, to 3.7 ms
// (docs/security.md, "Reads by the byte").
const DefaultReadRate = 16 << 20

// Default rate and concurrency limits, per server: generous for a token
// (an operator tightens them, or sets one token's with tokens create),
// tight for strangers.
var (
	DefaultTokenPolicy   = ratelimit.Policy{Requests: 10_000, Entries: 50_000, InFlight: 64, Read: DefaultReadRate}
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
	pages       *pages.Pages
	limiter     *ratelimit.Limiter
	// heavy is the lane of the requests that cost the server's CPU most
	// (see enterHeavy).
	heavy *ratelimit.Share
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
// registers for each operation in openapi.yaml. The pages for people (the
// API reference at /docs/, the log viewer at /ui/) are not operations of
// the contract: they are served beside it, inside the same correlation,
// tracing, observation and recovery, with their own security headers.
// It returns an error when the embedded contract cannot be loaded or a
// frame ancestor is not an origin.
func NewServer(d Deps) (http.Handler, error) {
	d.Limits = d.Limits.withDefaults()
	s := &server{Deps: d, limiter: ratelimit.New(), heavy: ratelimit.NewShare(HeavyLanes(), 1)}
	validator, err := contract.New(MaxBodyBytes, map[string]int64{
		"createSystemLogBatch": MaxBatchBodyBytes,
	}, s.authenticate, contract.WithBodyBudget(contract.NewBodyBudget(d.Limits.BodyBudget)),
		contract.WithLargeBodies(HeavyBytes, func(r *http.Request) error { return s.enterHeavy(r.Context()) }))
	if err != nil {
		return nil, err
	}
	s.openapiJSON = validator.JSON()
	s.pages, err = pages.New(pages.Options{FrameAncestors: d.FrameAncestors, NotFound: http.HandlerFunc(s.notFound)})
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	// The validator answers unknown routes first; this is the backstop.
	mux.HandleFunc("/", s.notFound)
	strict := api.NewStrictHandlerWithOptions(s, []api.StrictMiddlewareFunc{withRequest}, api.StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  s.bodyDecodeError,
		ResponseErrorHandlerFunc: s.writeError,
	})
	api.HandlerWithOptions(strict, api.StdHTTPServerOptions{
		BaseRouter:       mux,
		ErrorHandlerFunc: s.parameterError,
	})

	var apiHandler http.Handler = mux
	apiHandler = validator.Middleware(s.writeError)(apiHandler)
	apiHandler = s.limitRequests(apiHandler)
	apiHandler = auth.Middleware(apiHandler)

	root := http.NewServeMux()
	root.Handle("/", apiHandler)
	root.Handle("GET /docs/", s.pages.Dir("/docs/", "docs", "docsPage"))
	root.Handle("GET /ui/", s.pages.Dir("/ui/", "ui", "viewerPage"))

	var h http.Handler = root
	h = s.recoverPanics(h)
	h = s.metricsApart(h)
	h = s.limitHeaders(h)
	h = observe.Middleware(d.Metrics, d.Logger)(h)
	h = tracing.Middleware(d.TracerProvider)(h)
	h = requestid.Middleware(h)
	return h, nil
}

type requestKey struct{}

// withRequest puts the request on the context the strict handlers get, for
// the few that answer with a problem they build themselves (its instance is
// the request's path).
func withRequest(next api.StrictHandlerFunc, _ string) api.StrictHandlerFunc {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, request any) (any, error) {
		return next(context.WithValue(ctx, requestKey{}, r), w, r, request)
	}
}

// requestFrom returns the request withRequest put on ctx.
func requestFrom(ctx context.Context) *http.Request {
	r, _ := ctx.Value(requestKey{}).(*http.Request)
	return r
}
