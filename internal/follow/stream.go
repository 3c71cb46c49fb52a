package follow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Writer is where a stream is written: a response that can be flushed.
type Writer interface {
	io.Writer
	// Flush sends what was written to the client.
	Flush() error
}

// RetryMillis is the reconnection delay the stream suggests to clients.
const RetryMillis = 2000

// burst is how many waiting entries are written before one flush.
const burst = 256

// End is the data of a stream's final overflow or shutdown event.
type End struct {
	// After is the seq to resume after.
	After  int64  `json:"after"`
	Reason string `json:"reason"`
}

// Events a stream writes besides entries.
const (
	EventEntry    = "entry"
	EventOverflow = "overflow"
	EventShutdown = "shutdown"
	EventError    = "error"
)

// Stream writes s's Server-Sent Events to w until ctx is done or the hub
// ends the stream, then releases s. With after nil it starts at the end of
// the trail; otherwise it first writes every matching entry with seq >
// *after from the feed, then continues live. It returns nil when the stream
// ended as designed (the client left, an overflow, a shutdown), or the
// error that stopped it: the caller may then write an error event.
func (s *Subscription) Stream(ctx context.Context, w Writer, after *int64) error {
	defer s.Release()
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", RetryMillis); err != nil {
		return nil // the client is gone
	}
	if err := w.Flush(); err != nil {
		return nil
	}
	var last int64
	if after != nil {
		// Catch up before joining the fan-out, so that however far back the
		// stream starts, its bounded buffer does not fill while it reads.
		var err error
		if last, err = s.catchUp(ctx, w, *after, 0); err != nil {
			return quiet(err)
		}
	}
	var size int64
	if after == nil {
		// The end of the trail now, read before joining the fan-out: the
		// poller may be a poll behind it, and what it dispatches up to
		// there is skipped below; read after joining, it could already
		// count entries sealed since, which would be skipped too.
		var err error
		if size, err = s.hub.opts.Store.TreeSize(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	from, err := s.attach(ctx)
	if err != nil {
		return nil // ctx is done: the client is gone
	}
	if after == nil {
		last = max(from, size)
	} else if from > last {
		// What was sealed while catching up, up to where the fan-out starts.
		if last, err = s.catchUp(ctx, w, last, from); err != nil {
			return quiet(err)
		}
	}
	heartbeat := time.NewTicker(s.hub.opts.Heartbeat)
	defer heartbeat.Stop()
	var scratch []byte // the event being written, reused
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.end:
			end := End{After: last, Reason: "the server is shutting down; reconnect with Last-Event-ID or after"}
			name := EventShutdown
			if s.reason == endOverflow {
				name = EventOverflow
				end.Reason = "the client did not keep up; reconnect with after or Last-Event-ID to resume"
			}
			data, _ := json.Marshal(end)
			if WriteEvent(w, name, "", data) == nil {
				_ = w.Flush()
			}
			return nil
		case <-heartbeat.C:
			if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
			if err := w.Flush(); err != nil {
				return nil
			}
		case ev := <-s.events:
			for n := 0; ; n++ {
				if ev.seq > last { // an entry the catch-up already wrote is not repeated
					data, err := ev.encoded(s.hub.opts.Encode)
					if err != nil {
						return fmt.Errorf("encode entry %d: %w", ev.seq, err)
					}
					scratch = appendEvent(scratch[:0], EventEntry, strconv.FormatInt(ev.seq, 10), data)
					if _, err := w.Write(scratch); err != nil {
						return nil
					}
					last = ev.seq
				}
				if n == burst {
					break
				}
				var more bool
				select {
				case ev, more = <-s.events:
				default:
				}
				if !more {
					break
				}
			}
			if err := w.Flush(); err != nil {
				return nil
			}
		}
	}
}

// catchUp writes the matching entries with seq in (after, upTo] from the
// feed (upTo 0: up to the end of the trail) and returns the seq of the last
// entry written, or after when none was. It returns an error when the feed
// cannot be read or an entry encoded; a client gone stops it with ctx.
func (s *Subscription) catchUp(ctx context.Context, w Writer, after, upTo int64) (int64, error) {
	last, cur := after, after
	for {
		page, err := s.hub.opts.Store.Feed(ctx, s.filter, cur, pollPage)
		if err != nil {
			if ctx.Err() != nil {
				return last, errGone
			}
			return last, err
		}
		for _, e := range page.Items {
			if upTo > 0 && e.Seq > upTo {
				break
			}
			data, err := s.hub.opts.Encode(e)
			if err != nil {
				return last, fmt.Errorf("encode entry %d: %w", e.Seq, err)
			}
			if err := WriteEvent(w, EventEntry, strconv.FormatInt(e.Seq, 10), data); err != nil {
				return last, errGone
			}
			last = e.Seq
		}
		if err := w.Flush(); err != nil {
			return last, errGone
		}
		if page.NextAfter <= cur || (upTo > 0 && page.NextAfter >= upTo) {
			return last, nil
		}
		cur = page.NextAfter
	}
}

// errGone means the client cannot be written to any more.
var errGone = errors.New("follow: the client is gone")

// quiet is err, or nil when it only says the client is gone.
func quiet(err error) error {
	if errors.Is(err, errGone) {
		return nil
	}
	return err
}

// WriteEvent writes one event: its id line when id is not empty, its name
// and its data, a single line.
func WriteEvent(w io.Writer, name, id string, data []byte) error {
	_, err := w.Write(appendEvent(make([]byte, 0, len(data)+len(name)+len(id)+24), name, id, data))
	return err
}

// appendEvent appends the event WriteEvent writes to dst.
func appendEvent(dst []byte, name, id string, data []byte) []byte {
	if id != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, id...)
		dst = append(dst, '\n')
	}
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, data...)
	return append(dst, "\n\n"...)
}
