package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/follow"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/problem"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// streamStall is how long one write to a stream may block: a client that
// stops reading for longer is cut off (its buffer on the server is bounded
// anyway). It replaces http.Server's WriteTimeout, which would end every
// stream after that long.
const streamStall = 30 * time.Second

// streamRetrySeconds is the Retry-After of a stream refused because the
// server holds its maximum.
const streamRetrySeconds = 5

// GetSystemLogStream opens a live tail. The response is written by
// streamResponse rather than the generated text/event-stream response,
// whose writer cannot clear the server's write timeout, finds no
// http.Flusher behind a wrapping middleware, and has no way to end a
// failing stream with an event instead of a truncated body.
func (s *server) GetSystemLogStream(ctx context.Context, req api.GetSystemLogStreamRequestObject) (api.GetSystemLogStreamResponseObject, error) {
	p := req.Params
	filter := filterOf(p.Level, p.MinLevel, p.Category, p.CorrelationId, p.UserId, p.TraceId, p.Since, p.Until)
	after := p.After
	if after == nil && p.LastEventID != nil {
		n, err := strconv.ParseInt(*p.LastEventID, 10, 64)
		if err != nil {
			return nil, problem.Invalid("Last-Event-ID is not a seq",
				problem.Header("Last-Event-ID", "must be the id of an event of this stream, a seq"))
		}
		after = &n
	}
	sub, err := s.Follow.Reserve(filter)
	switch {
	case errors.Is(err, follow.ErrTooManyStreams):
		return nil, problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable,
			"this server holds its maximum of live streams; retry later (or on another server)").
			WithHeader("Retry-After", strconv.Itoa(streamRetrySeconds))
	case errors.Is(err, follow.ErrClosed):
		return nil, problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable,
			"this server is shutting down; reconnect to another one").
			WithHeader("Retry-After", "1")
	case err != nil:
		return nil, err
	}
	return streamResponse{ctx: ctx, sub: sub, after: after, logger: s.Logger}, nil
}

// streamResponse writes a live tail as Server-Sent Events.
type streamResponse struct {
	ctx    context.Context
	sub    *follow.Subscription
	after  *int64
	logger *slog.Logger
}

// VisitGetSystemLogStreamResponse writes the stream until it ends. Once
// the headers are sent, a failure ends the stream with an error event, so
// it always returns nil.
func (r streamResponse) VisitGetSystemLogStreamResponse(w http.ResponseWriter) error {
	rc := http.NewResponseController(w)
	// The stream lasts as long as the client stays: no overall deadline.
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.Set(requestid.Header, requestid.FromContext(r.ctx))
	w.WriteHeader(http.StatusOK)
	out := newBufferedStream(&flushingWriter{w: w, rc: rc})
	if err := r.sub.Stream(r.ctx, out, r.after); err != nil {
		r.logger.ErrorContext(r.ctx, "stream failed", "path", "/system/logs/stream", "error", err)
		p := problemFor(err, 0)
		data, _ := json.Marshal(api.ProblemDetails{
			Type: p.Type, Title: p.Title, Status: p.Status, Detail: p.Detail,
			Instance: "/system/logs/stream", CorrelationId: requestid.FromContext(r.ctx), TraceId: problem.TraceID(r.ctx),
		})
		if follow.WriteEvent(out, follow.EventError, "", data) == nil {
			_ = out.Flush()
		}
	}
	return nil
}

// bufferedStream gathers a stream's events between flushes, so that a
// burst of events is one write to the response (one chunk, one system
// call) rather than a write, and a write deadline, per event: with 100
// streams following 5,000 entries a second those were a fifth of the
// server's CPU (docs/performance.md, "The live tail's writes").
type bufferedStream struct {
	*bufio.Writer
	out *flushingWriter
}

// streamBuffer is how much of a stream waits for its flush.
const streamBuffer = 32 << 10

func newBufferedStream(out *flushingWriter) *bufferedStream {
	return &bufferedStream{Writer: bufio.NewWriterSize(out, streamBuffer), out: out}
}

// Flush writes what is buffered and sends it to the client.
func (b *bufferedStream) Flush() error {
	if err := b.Writer.Flush(); err != nil {
		return err
	}
	return b.out.Flush()
}

// flushingWriter writes to a response, each write bounded by streamStall,
// and flushes through http.ResponseController (which unwraps middleware).
type flushingWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (f *flushingWriter) Write(p []byte) (int, error) {
	_ = f.rc.SetWriteDeadline(time.Now().Add(streamStall))
	return f.w.Write(p)
}

func (f *flushingWriter) Flush() error {
	_ = f.rc.SetWriteDeadline(time.Now().Add(streamStall))
	return f.rc.Flush()
}

// EncodeEntry is the data of an entry event: the entry's SystemLog JSON
// on one line. The follow hub is built with it.
func EncodeEntry(e logstore.SealedEntry) ([]byte, error) {
	seal := e.Seal
	l := logToAPI(e.SystemLog, &seal)
	return appendSystemLog(make([]byte, 0, 512), &l), nil
}
