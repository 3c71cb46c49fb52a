// Package observe watches every request from the outside: it counts it in
// the metrics, names its trace span after its route, and writes one access
// log record when it is done. What only inner layers learn (which operation
// of the contract the request is, which token authenticated it) they note
// on the request's context with SetRoute and SetTokenName.
package observe

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/valhalla-platform/valhalla/internal/metrics"
)

// StatusClientClosedRequest is the status recorded for a request whose
// client went away before it was answered (nginx's 499): a client that
// hung up is not a server error.
const StatusClientClosedRequest = 499

// record is what inner layers note about a request, and what was sent. It
// is written and read on the request's goroutine only.
type record struct {
	operation string // the contract's operationId; "" when none matched
	route     string // the contract's path template, e.g. /system/logs/{id}
	tokenName string // the authenticating token's name; "" when anonymous
	// conn is the request's own context, which net/http cancels when the
	// client's connection closes.
	conn     context.Context
	status   int   // the status sent; 0 until the header is written
	bytes    int64 // body bytes written
	writeErr error // the first failed write to the client
}

// clientGone reports whether the client went away: its connection closed
// or a write to it failed.
func (rec *record) clientGone() bool {
	return rec.writeErr != nil || errors.Is(rec.conn.Err(), context.Canceled)
}

// ClientGone reports whether the client of the request on ctx went away
// (its connection closed, or a write to it failed), so that no answer will
// be read: the error that follows is no server error, and Middleware
// records the request as StatusClientClosedRequest. Outside Middleware it
// reports false.
func ClientGone(ctx context.Context) bool {
	rec := recordFrom(ctx)
	return rec != nil && rec.clientGone()
}

// ResponseStarted reports whether the response to the request on ctx has
// started (its status line is sent or buffered), after which no other
// status, and so no problem, can be sent. Outside Middleware it reports
// false.
func ResponseStarted(ctx context.Context) bool {
	rec := recordFrom(ctx)
	return rec != nil && rec.status != 0
}

type contextKey struct{}

func recordFrom(ctx context.Context) *record {
	rec, _ := ctx.Value(contextKey{}).(*record)
	return rec
}

// SetRoute notes the operation the request matched: its operationId and
// path template. The contract validator calls it once it has found the
// route. Outside Middleware it does nothing.
func SetRoute(ctx context.Context, operationID, pathTemplate string) {
	if rec := recordFrom(ctx); rec != nil {
		rec.operation, rec.route = operationID, pathTemplate
	}
}

// SetTokenName notes the name of the token that authenticated the request,
// for the access log. It is the hook for authentication: the middleware
// that verifies a token calls it with the token's name, never the token
// itself. Outside Middleware it does nothing.
func SetTokenName(ctx context.Context, name string) {
	if rec := recordFrom(ctx); rec != nil {
		rec.tokenName = name
	}
}

// Operation returns the operationId the request matched, or
// metrics.Unmatched when it matched none (or is not being observed).
func Operation(ctx context.Context) string {
	return recordFrom(ctx).operationLabel()
}

// operationLabel is the operation's label in metrics and logs.
func (rec *record) operationLabel() string {
	if rec == nil || rec.operation == "" {
		return metrics.Unmatched
	}
	return rec.operation
}

// Middleware observes each request: in flight, then counted and timed by
// operation and status code, its span renamed "METHOD /path/{template}",
// and one access log record at info level. A request whose client went
// away (see ClientGone) is recorded as StatusClientClosedRequest in all
// three; when nothing was sent yet, that status is written too, so the
// tracing middleware outside records it on the span (once a response has
// started, the span keeps the status sent, with the write error and a
// "client closed request" event). It must run inside the request id and
// tracing middleware, whose ids the logger's handler adds, and outside
// everything that answers requests.
func Middleware(m *metrics.Metrics, logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			finished := m.RequestStarted()
			ctx := r.Context()
			rec := &record{conn: ctx}
			rw := &responseRecorder{ResponseWriter: w, rec: rec}
			defer func() {
				d := time.Since(start)
				span := trace.SpanFromContext(ctx)
				status := rec.statusCode()
				if rec.clientGone() {
					if rec.status == 0 {
						rw.WriteHeader(StatusClientClosedRequest) // read by nobody but the tracing middleware
					}
					span.AddEvent("client closed request")
					status = StatusClientClosedRequest
				}
				operation := rec.operationLabel()
				finished(operation, status, d)
				if rec.route != "" {
					span.SetName(r.Method + " " + rec.route)
					span.SetAttributes(attribute.String("http.route", rec.route))
				}
				attrs := []slog.Attr{
					slog.String("method", r.Method),
					slog.String("route", operation),
					slog.String("path", r.URL.Path),
					slog.Int("status", status),
					slog.Float64("duration_ms", float64(d.Microseconds())/1000),
					slog.Int64("bytes", rec.bytes),
					slog.String("remote_addr", r.RemoteAddr),
				}
				if rec.tokenName != "" {
					attrs = append(attrs, slog.String("token_name", rec.tokenName))
				}
				logger.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
			}()
			next.ServeHTTP(rw, r.WithContext(context.WithValue(ctx, contextKey{}, rec)))
		})
	}
}

// responseRecorder notes the status code, the body bytes and a failed
// write in its record.
type responseRecorder struct {
	http.ResponseWriter
	rec *record
}

func (rw *responseRecorder) WriteHeader(code int) {
	if rw.rec.status == 0 {
		rw.rec.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *responseRecorder) Write(b []byte) (int, error) {
	if rw.rec.status == 0 {
		rw.rec.status = http.StatusOK
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.rec.bytes += int64(n)
	if err != nil && rw.rec.writeErr == nil {
		rw.rec.writeErr = err
	}
	return n, err
}

// statusCode is what the client was sent: 200 when the handler wrote nothing.
func (rec *record) statusCode() int {
	if rec.status == 0 {
		return http.StatusOK
	}
	return rec.status
}

// Flush passes a flush through, for streaming responses that look for
// http.Flusher rather than use http.ResponseController.
func (rw *responseRecorder) Flush() {
	if rw.rec.status == 0 {
		rw.rec.status = http.StatusOK
	}
	_ = http.NewResponseController(rw.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rw *responseRecorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }
