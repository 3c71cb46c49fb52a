package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
)

// Event is one Server-Sent Event of a live tail.
type Event struct {
	// ID is the event's id (an entry's seq), "" when it has none.
	ID string
	// Name is the event type: entry, overflow, shutdown or error.
	Name string
	// Data is the event's data, its lines joined by "\n".
	Data []byte
	// Retry is the reconnection delay the server last suggested, 0 if none.
	Retry time.Duration
}

// maxEventLine bounds one line of a stream (an entry's JSON).
const maxEventLine = 8 << 20

// ReadEvents parses a text/event-stream from r and calls fn for each event,
// in order, until r ends, fn returns an error (which it returns), or r
// fails. Comments (heartbeats) are skipped; a retry field only updates the
// Retry of the events that follow.
func ReadEvents(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	var (
		ev      Event
		data    bytes.Buffer
		hasData bool
		retry   time.Duration
	)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if hasData || ev.Name != "" {
				ev.Data, ev.Retry = bytes.Clone(data.Bytes()), retry
				if ev.Name == "" {
					ev.Name = "message"
				}
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, hasData = Event{}, false
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Name = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil {
				retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return sc.Err()
}

// ErrStreamRefused wraps the answer of a server that refused a stream for
// good (a bad token, a missing scope, an invalid filter): retrying the same
// request cannot help.
var ErrStreamRefused = errors.New("stream refused")

// FollowOptions tune Follow.
type FollowOptions struct {
	// OnReconnect, when set, is told each time the stream is opened again
	// and why.
	OnReconnect func(after int64, why error)
	// MaxBackoff bounds the wait between attempts (default 30 s).
	MaxBackoff time.Duration
}

// Follow reads the live tail with params until ctx is done or fn returns
// an error, calling fn with each entry in seq order. It reconnects by itself
// whenever the stream ends (overflow, server shutdown, a dropped connection,
// a 503), resuming after the last entry fn was given, so fn sees every
// matching entry once. It returns fn's error, ctx's, or ErrStreamRefused
// (wrapped, with the server's problem) when the server refuses the request
// for good.
func Follow(ctx context.Context, c api.ClientInterface, params api.GetSystemLogStreamParams, fn func(api.SystemLog) error, opts FollowOptions) error {
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	var last *int64
	if params.After != nil {
		v := *params.After
		last = &v
	}
	delay := time.Second
	failures := 0
	for {
		p := params
		p.After = last
		p.LastEventID = nil
		err := followOnce(ctx, c, p, func(e api.SystemLog) error {
			if err := fn(e); err != nil {
				return &callbackError{err}
			}
			if e.Seq != nil {
				v := *e.Seq
				last = &v
			}
			failures = 0
			return nil
		}, &delay)
		var cb *callbackError
		switch {
		case errors.As(err, &cb):
			return cb.err
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrStreamRefused):
			return err
		}
		wait := delay
		var ra retryAfter
		if errors.As(err, &ra) {
			wait = time.Duration(ra)
		}
		if failures > 0 { // back off while the server stays away
			wait = min(opts.MaxBackoff, wait<<min(failures, 5))
		}
		failures++
		if opts.OnReconnect != nil {
			after := int64(0)
			if last != nil {
				after = *last
			}
			opts.OnReconnect(after, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

// retryAfter is a 503's Retry-After, as an error.
type retryAfter time.Duration

func (r retryAfter) Error() string {
	return fmt.Sprintf("server busy; retry after %s", time.Duration(r))
}

// StreamEnded says why a stream ended without an error on the wire.
type StreamEnded struct {
	// Event is overflow, shutdown or error ("" when the connection just ended).
	Event string
	// Data is the final event's data.
	Data string
}

func (e *StreamEnded) Error() string {
	if e.Event == "" {
		return "the stream ended"
	}
	return "the stream ended with " + e.Event + ": " + e.Data
}

// followOnce opens the stream once and reads it to its end.
func followOnce(ctx context.Context, c api.ClientInterface, params api.GetSystemLogStreamParams, fn func(api.SystemLog) error, delay *time.Duration) error {
	resp, err := c.GetSystemLogStream(ctx, &params)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode == http.StatusServiceUnavailable {
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
				return retryAfter(time.Duration(s) * time.Second)
			}
			return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
		if resp.StatusCode >= 500 {
			return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
		return fmt.Errorf("%w: %s: %s", ErrStreamRefused, resp.Status, bytes.TrimSpace(body))
	}
	ended := &StreamEnded{}
	err = ReadEvents(resp.Body, func(ev Event) error {
		if ev.Retry > 0 {
			*delay = ev.Retry
		}
		if ev.Name != "entry" {
			ended.Event, ended.Data = ev.Name, string(ev.Data)
			return nil
		}
		var e api.SystemLog
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return fmt.Errorf("entry %s: %w", ev.ID, err)
		}
		return fn(e)
	})
	if err != nil {
		return err
	}
	return ended
}
