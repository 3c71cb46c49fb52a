// Package follow is the live tail of the sealed trail: one poller per
// server reads the feed (seq > the last seen) every few tens of
// milliseconds and fans each new entry out, in process, to every stream
// whose filter it matches. A stream that starts in the past first reads the
// feed by itself, then joins the fan-out exactly where its reading ended,
// so nothing is lost or repeated. Each stream's buffer is bounded: a
// subscriber that cannot keep up is ended with the seq to resume after,
// never allowed to grow the server's memory.
package follow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// Errors Reserve returns; test with errors.Is.
var (
	// ErrTooManyStreams means the server holds its maximum of streams.
	ErrTooManyStreams = errors.New("follow: too many streams")
	// ErrClosed means the server is shutting down.
	ErrClosed = errors.New("follow: shutting down")
)

// Defaults of Options.
const (
	DefaultPoll       = 50 * time.Millisecond
	DefaultMaxStreams = 256
	// DefaultBuffer holds a seal pass of 16,000 entries a second at the
	// default 250 ms interval: a pass is dispatched at once, and with 1024
	// every stream of the bench's 100 overflowed at 5,700 writes a second
	// though its client kept up. A buffered entry is a pointer to the
	// event every stream shares.
	DefaultBuffer    = 4096
	DefaultHeartbeat = 15 * time.Second
	// pollPage is how many entries one poll of the feed reads at most.
	pollPage = 1000
)

// Options configure a Hub. Store and Encode are required.
type Options struct {
	Store *logstore.Store
	// Encode renders an entry as the data of its event (one line of JSON).
	Encode func(logstore.SealedEntry) ([]byte, error)
	// Poll is how often the feed is read (DefaultPoll).
	Poll time.Duration
	// MaxStreams bounds the streams open at once (DefaultMaxStreams).
	MaxStreams int
	// Buffer is how many entries a stream may have waiting to be written
	// (DefaultBuffer); past it, the stream overflows.
	Buffer int
	// Heartbeat is the interval of comment heartbeats (DefaultHeartbeat).
	Heartbeat time.Duration
	Logger    *slog.Logger
}

// Hub fans the feed out to streams. Build it with New and run Run.
type Hub struct {
	opts Options

	ready chan struct{} // closed once pos is known
	wake  chan struct{} // Wake's signal to poll now

	mu     sync.Mutex
	pos    int64 // the last seq the poller has read and dispatched
	subs   map[*Subscription]struct{}
	open   int // reserved streams, attached or not
	closed bool
}

// New returns a hub; it delivers nothing until Run runs.
func New(opts Options) *Hub {
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{opts: opts, ready: make(chan struct{}), wake: make(chan struct{}, 1), subs: map[*Subscription]struct{}{}}
}

// event is one entry as every stream writes it: encoded once, shared.
type event struct {
	seq   int64
	entry logstore.SealedEntry
	once  sync.Once
	data  []byte
	err   error
}

func (e *event) encoded(encode func(logstore.SealedEntry) ([]byte, error)) ([]byte, error) {
	e.once.Do(func() { e.data, e.err = encode(e.entry) })
	return e.data, e.err
}

// Wake makes the poller read the feed now rather than at its next tick:
// the sequencer on this server calls it after each seal, so that an entry
// reaches the streams here as soon as it is sealed. It never blocks.
func (h *Hub) Wake() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Run polls the feed until ctx is done, every Poll and whenever woken: it
// starts at the end of the trail and dispatches every entry sealed after
// that. A failed read is retried at the next poll; the failure is logged
// once, and so is the recovery.
func (h *Hub) Run(ctx context.Context) {
	tick := time.NewTicker(h.opts.Poll)
	defer tick.Stop()
	started, failing := false, false
	report := func(err error) {
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			failing = true
			h.opts.Logger.Warn("follow: cannot read the feed; live streams wait until it can", "error", err)
		case err == nil && failing:
			failing = false
			h.opts.Logger.Info("follow: reading the feed again")
		}
	}
	for {
		if !started {
			// The end of the trail: streams that start now start there.
			size, err := h.opts.Store.TreeSize(ctx)
			report(err)
			if err == nil {
				h.mu.Lock()
				h.pos = size
				h.mu.Unlock()
				close(h.ready)
				started = true
			}
		}
		for started {
			full, err := h.poll(ctx)
			report(err)
			if err != nil || !full {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-h.wake:
		}
	}
}

// poll reads one page after pos and dispatches it; full reports that the
// page was full, so more may be waiting.
func (h *Hub) poll(ctx context.Context) (full bool, err error) {
	h.mu.Lock()
	after, idle := h.pos, len(h.subs) == 0
	h.mu.Unlock()
	if idle {
		// Nobody to dispatch to: move to the end of the trail without
		// reading the entries (the poller read every sealed entry a second
		// time, a fifth of PostgreSQL's work while sealing). A stream that
		// attaches meanwhile keeps the position it was given.
		size, err := h.opts.Store.TreeSize(ctx)
		if err != nil {
			return false, err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.subs) == 0 { // only this goroutine moves pos
			h.pos = max(h.pos, size)
		}
		return false, nil
	}
	page, err := h.opts.Store.Feed(ctx, logstore.Filter{}, after, pollPage)
	if err != nil {
		return false, err
	}
	events := make([]*event, len(page.Items))
	for i, e := range page.Items {
		events[i] = &event{seq: e.Seq, entry: e}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		for _, ev := range events {
			if !sub.filter.Matches(ev.entry.SystemLog) {
				continue
			}
			select {
			case sub.events <- ev:
			default:
				h.endLocked(sub, endOverflow)
			}
			if sub.ended() {
				break
			}
		}
	}
	h.pos = page.NextAfter
	return len(page.Items)+len(page.Missing) >= pollPage, nil
}

// Close ends every stream with a shutdown event and refuses new ones.
// It is safe to call more than once.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for sub := range h.subs {
		h.endLocked(sub, endShutdown)
	}
}

// Reserve takes one of the server's stream slots for a stream with filter
// f; Release gives it back. It returns ErrTooManyStreams or ErrClosed.
func (h *Hub) Reserve(f logstore.Filter) (*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, ErrClosed
	case h.open >= h.opts.MaxStreams:
		return nil, fmt.Errorf("%w: %d are open", ErrTooManyStreams, h.open)
	}
	h.open++
	return &Subscription{hub: h, filter: f, events: make(chan *event, h.opts.Buffer), end: make(chan struct{})}, nil
}

// Open reports how many streams are open.
func (h *Hub) Open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.open
}

// endReason says why a stream ended.
type endReason int

const (
	endNone endReason = iota
	endOverflow
	endShutdown
)

// Subscription is one stream's slot and, once attached, its place in the
// fan-out.
type Subscription struct {
	hub    *Hub
	filter logstore.Filter
	events chan *event
	end    chan struct{} // closed when the hub ends the stream
	reason endReason     // set before end is closed
	// released guards Release.
	released bool
}

func (s *Subscription) ended() bool { return s.reason != endNone }

// endLocked detaches sub and tells its writer why. h.mu is held.
func (h *Hub) endLocked(sub *Subscription, why endReason) {
	if sub.ended() {
		return
	}
	delete(h.subs, sub)
	sub.reason = why
	close(sub.end)
}

// attach joins the fan-out: every matching entry after the returned seq
// will arrive on s.events. It waits until the poller knows where the trail
// ends, or ctx is done.
func (s *Subscription) attach(ctx context.Context) (int64, error) {
	h := s.hub
	select {
	case <-h.ready:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		if !s.ended() {
			s.reason = endShutdown
			close(s.end)
		}
		return h.pos, nil
	}
	h.subs[s] = struct{}{}
	return h.pos, nil
}

// Release leaves the fan-out and frees the slot. It is safe to call more
// than once.
func (s *Subscription) Release() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
	if !s.released {
		s.released = true
		h.open--
	}
}
