package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/observe"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// retryAfterSeconds is what a client is told to wait when the database is down.
const retryAfterSeconds = 5

// realm names Valhalla in bearer challenges (RFC 6750).
const realm = `Bearer realm="valhalla"`

// problemFor is the one table from error to problem. Anything not listed is
// a 500 whose detail says nothing about the cause. sealRetry is the
// Retry-After, in seconds, of an answer about an entry not sealed yet.
func problemFor(err error, sealRetry int) *problem.Problem {
	var (
		p        *problem.Problem
		scopeErr *auth.ScopeError
	)
	if refusal, ok := asRefusal(err); ok {
		p = rateLimitProblem(refusal)
		p.Cause = err
		return p
	}
	switch {
	case errors.As(err, &p):
		return p
	case errors.Is(err, auth.ErrMissingToken):
		p = problem.New(http.StatusUnauthorized, problem.TypeUnauthorized,
			"this operation needs a bearer token: send Authorization: Bearer <token>").
			WithHeader("WWW-Authenticate", realm)
	case errors.Is(err, auth.ErrInvalidToken):
		p = problem.New(http.StatusUnauthorized, problem.TypeUnauthorized,
			"the bearer token is not valid: it is malformed, unknown or revoked").
			WithHeader("WWW-Authenticate", realm+`, error="invalid_token"`)
	case errors.As(err, &scopeErr):
		scopes := strings.Join(scopeErr.Missing, " ")
		p = problem.New(http.StatusForbidden, problem.TypeForbidden,
			fmt.Sprintf("the token %q lacks the scope %s that this operation needs", scopeErr.Token, scopes)).
			WithHeader("WWW-Authenticate", realm+`, error="insufficient_scope", scope="`+scopes+`"`)
	case errors.Is(err, ledger.ErrNotSealed):
		p = problem.New(http.StatusNotFound, problem.TypeNotFound,
			"the entry is stored but not sealed yet; it will be within the seal interval, retry after Retry-After").
			WithHeader("Retry-After", strconv.Itoa(sealRetry))
	case errors.Is(err, ledger.ErrNoCheckpoint):
		p = problem.New(http.StatusNotFound, problem.TypeNotFound,
			"no checkpoint of this tree size was signed; GET /ledger/checkpoint gives the latest").
			WithHeader("Retry-After", strconv.Itoa(sealRetry))
	case errors.Is(err, ledger.ErrBadRange):
		// Not a 422: the request is well formed, there is just no such
		// proof between these sizes.
		p = problem.New(http.StatusNotFound, problem.TypeNotFound,
			"no such proof: a consistency proof runs from a smaller signed tree size to a larger one, and an inclusion proof needs a tree_size at least the entry's seq")
	case errors.Is(err, ledger.ErrNoEntry), errors.Is(err, logstore.ErrNotFound):
		p = problem.New(http.StatusNotFound, problem.TypeNotFound, "no log entry has this id")
	case errors.Is(err, logstore.ErrInvalidCursor):
		p = problem.Invalid("the cursor is not valid",
			problem.Parameter("cursor", "not a cursor returned by this server; start again without it"))
	case errors.Is(err, logstore.ErrKeyReused):
		p = problem.Invalid("the Idempotency-Key was used with another request",
			problem.Header("Idempotency-Key", "was used in the last 24 hours with another request body; use a new key for a new write"))
	case errors.Is(err, logstore.ErrInvalidText):
		p = problem.Invalid("a value contains characters that cannot be stored")
	case errors.Is(err, logstore.ErrReadTimeout):
		p = problem.New(http.StatusServiceUnavailable, problem.TypeReadTimeout,
			"the read ran out of time on the server; narrow it (a since/until window, a category, correlation_id, user_id or trace_id filter, a smaller total_limit or no include_total) or retry later").
			WithHeader("Retry-After", strconv.Itoa(retryAfterSeconds))
	case errors.Is(err, database.ErrUnavailable):
		p = problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable,
			"the database is unavailable; retry later").
			WithHeader("Retry-After", strconv.Itoa(retryAfterSeconds))
	default:
		p = problem.New(http.StatusInternalServerError, problem.TypeInternal,
			"an unexpected error occurred; quote the correlation_id when reporting it")
	}
	p.Cause = err
	return p
}

// sealRetry is how many whole seconds a client waiting for a seal should
// wait: the seal interval, rounded up, and at least 1.
func (s *server) sealRetry() int {
	return max(1, int((s.SealInterval+time.Second-1)/time.Second))
}

// writeError answers r with the problem err maps to. It is the generated
// strict server's response error hook, so handler errors land here.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeProblem(w, r, problemFor(err, s.sealRetry()))
}

// writeProblem logs server-side failures (the logger adds the request and
// trace ids), counts validation failures by operation, then renders p. It
// writes nothing when the client went away (whatever failed then failed
// because nobody waits for the answer, so observe records a 499 at info
// level) or when the response has already started, since a second status
// cannot be sent: a failure there is logged, and the client sees a short
// body.
func (s *server) writeProblem(w http.ResponseWriter, r *http.Request, p *problem.Problem) {
	ctx := r.Context()
	switch {
	case observe.ClientGone(ctx):
		s.Logger.DebugContext(ctx, "client closed request", "method", r.Method, "path", r.URL.Path, "error", p.Cause)
		return
	case observe.ResponseStarted(ctx):
		s.Logger.ErrorContext(ctx, "response failed after it started",
			"method", r.Method, "path", r.URL.Path, "status", p.Status, "error", p.Cause)
		return
	}
	if p.Status >= 500 {
		s.Logger.ErrorContext(r.Context(), "request failed",
			"method", r.Method, "path", r.URL.Path, "status", p.Status, "error", p.Cause)
	}
	if p.Type == problem.TypeValidation {
		s.Metrics.ValidationFailed(observe.Operation(r.Context()))
	}
	problem.Write(w, r, p)
}

// bodyDecodeError is the strict server's request error hook: the body passed
// the contract but did not decode into the generated type.
func (s *server) bodyDecodeError(w http.ResponseWriter, r *http.Request, err error) {
	p := problem.New(http.StatusBadRequest, problem.TypeMalformed, "request body could not be decoded")
	p.Cause = err
	s.writeProblem(w, r, p)
}

// parameterError is the generated router's parameter binding hook.
func (s *server) parameterError(w http.ResponseWriter, r *http.Request, err error) {
	name := ""
	var (
		invalid  *api.InvalidParamFormatError
		tooMany  *api.TooManyValuesForParamError
		required *api.RequiredParamError
		header   *api.RequiredHeaderError
	)
	switch {
	case errors.As(err, &invalid):
		name = invalid.ParamName
	case errors.As(err, &tooMany):
		name = tooMany.ParamName
	case errors.As(err, &required):
		name = required.ParamName
	case errors.As(err, &header):
		p := problem.Invalid("a required header is missing", problem.Header(header.ParamName, "is required"))
		p.Cause = err
		s.writeProblem(w, r, p)
		return
	}
	var p *problem.Problem
	if name == "" {
		p = problem.New(http.StatusBadRequest, problem.TypeMalformed, "request parameters could not be read")
	} else {
		p = problem.Invalid("a parameter is not valid", problem.Parameter(name, "value is not valid"))
	}
	p.Cause = err
	s.writeProblem(w, r, p)
}

// notFound answers any path the routes do not cover.
func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeProblem(w, r, problem.New(http.StatusNotFound, problem.TypeNotFound, "no operation at "+r.URL.Path))
}

// recoverPanics turns a panic into a 500 problem; the stack goes to the log.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.Logger.ErrorContext(r.Context(), "panic serving request",
				"method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if !tw.wroteHeader {
				problem.Write(w, r, problem.New(http.StatusInternalServerError, problem.TypeInternal,
					"an unexpected error occurred; quote the correlation_id when reporting it"))
			}
		}()
		next.ServeHTTP(tw, r)
	})
}

// trackingWriter records whether the response has started.
type trackingWriter struct {
	http.ResponseWriter
	wroteHeader bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wroteHeader = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wroteHeader = true
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
