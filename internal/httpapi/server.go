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
	"github.com/valhalla-platform/valhalla/internal/requestid"
	"github.com/valhalla-platform/valhalla/internal/tracing"
)

// Body size limits: one entry, and a batch of up to 1000.
const (
	MaxBodyBytes      = 1 << 20
	maxBatchBodyBytes = 16 << 20
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
}

// server implements api.StrictServerInterface.
type server struct {
	Deps
	openapiJSON []byte
	pages       *pages.Pages
}

var _ api.StrictServerInterface = (*server)(nil)

// NewServer returns the whole HTTP surface. Middleware, outermost first:
// correlation id (so every response, panics included, carries it); trace
// context (joining the caller's W3C trace or starting one); observation
// (metrics, span name and one access log record per request); panic
// recovery; the slot for the authenticated caller; contract validation
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
	validator, err := contract.New(MaxBodyBytes, map[string]int64{
		"createSystemLogBatch": maxBatchBodyBytes,
	}, d.Tokens.Check)
	if err != nil {
		return nil, err
	}
	s := &server{Deps: d, openapiJSON: validator.JSON()}
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
	apiHandler = auth.Middleware(apiHandler)

	root := http.NewServeMux()
	root.Handle("/", apiHandler)
	root.Handle("GET /docs/", s.pages.Dir("/docs/", "docs", "docsPage"))
	root.Handle("GET /ui/", s.pages.Dir("/ui/", "ui", "viewerPage"))

	var h http.Handler = root
	h = s.recoverPanics(h)
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
