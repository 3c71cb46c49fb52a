package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sony/gobreaker/v2"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/duty"
	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// Defaults of Options.
const (
	DefaultBatchSize     = 500
	DefaultLinger        = time.Second
	DefaultTimeout       = 10 * time.Second
	DefaultProbeInterval = 30 * time.Second
	// DefaultFailuresToOpen is the run of failed attempts that opens a
	// sink's circuit and makes the health check name it.
	DefaultFailuresToOpen = 5
	// minBackoff is the first retry's wait; each failure doubles it, up
	// to the probe interval.
	minBackoff = 250 * time.Millisecond
	// takeoverPoll is how often a server that does not deliver a sink
	// tries to, and how often the sinks are listed.
	takeoverPoll = time.Second
	// idlePoll is how often a caught-up deliverer reads the feed again.
	idlePoll = 100 * time.Millisecond
)

// lockSpace is the high half of every sink's advisory lock key (the
// sink's id is the low half), apart from the ledger's key.
const lockSpace int64 = 0x76_68_73_6b << 32 // "vhsk"

// Options configure a Manager.
type Options struct {
	// Pool is the database the sinks live in.
	Pool *pgxpool.Pool
	// Connect opens the dedicated connection each deliverer holds its
	// sink's lock on.
	Connect func(ctx context.Context) (*pgx.Conn, error)
	// Store reads the sealed feed.
	Store *logstore.Store
	// Encode renders an entry as its SystemLog JSON.
	Encode func(logstore.SealedEntry) ([]byte, error)
	// BatchSize is the most entries one delivery carries.
	BatchSize int
	// Linger is how long a batch that is not full waits for more entries.
	Linger time.Duration
	// Timeout bounds each delivery request.
	Timeout time.Duration
	// FailuresToOpen is how many failed attempts in a row open a sink's
	// circuit; while it is open the deliverer only probes, every
	// ProbeInterval, and the circuit closes on the first success.
	FailuresToOpen int
	ProbeInterval  time.Duration
	Logger         *slog.Logger
	// Client sends the deliveries (default: a client without timeout;
	// Timeout bounds each request).
	Client *http.Client
}

// Manager runs the deliverers of this server.
type Manager struct {
	opts    Options
	sinks   *Store
	metrics *Metrics

	mu      sync.Mutex
	running map[int64]bool
	wg      sync.WaitGroup
}

// NewManager returns a manager; Run starts it.
func NewManager(opts Options) *Manager {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Linger < 0 {
		opts.Linger = 0
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.FailuresToOpen <= 0 {
		opts.FailuresToOpen = DefaultFailuresToOpen
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	sinks := NewStore(opts.Pool)
	return &Manager{opts: opts, sinks: sinks, metrics: newMetrics(sinks), running: map[int64]bool{}}
}

// Metrics returns the manager's Prometheus metrics.
func (m *Manager) Metrics() *Metrics { return m.metrics }

// Run lists the sinks every second and starts a deliverer for each active
// one that has none on this server, until ctx is done; then it waits for
// the deliverers to stop.
func (m *Manager) Run(ctx context.Context) {
	defer m.wg.Wait()
	for {
		list, err := m.sinks.List(ctx)
		if err != nil && ctx.Err() == nil {
			m.opts.Logger.Warn("delivery: cannot list sinks", "error", err)
		}
		for _, s := range list {
			if s.Paused {
				continue
			}
			m.mu.Lock()
			if !m.running[s.ID] {
				m.running[s.ID] = true
				m.wg.Go(func() {
					defer func() { m.mu.Lock(); delete(m.running, s.ID); m.mu.Unlock() }()
					m.work(ctx, s.ID, s.Name)
				})
			}
			m.mu.Unlock()
		}
		if !duty.Wait(ctx, takeoverPoll) {
			return
		}
	}
}

// work competes for sink id's lock on a dedicated connection and delivers
// while it holds it, until the sink is paused or deleted, the connection
// fails or ctx is done.
func (m *Manager) work(ctx context.Context, id int64, name string) {
	log := m.opts.Logger.With("sink", name)
	conn, err := m.opts.Connect(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("delivery: cannot connect", "error", err)
		}
		return
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = conn.Close(closeCtx) // releases the lock
		cancel()
	}()
	q := db.New(conn)
	for {
		sink, err := q.GetSink(ctx, id)
		if err != nil || sink.Paused {
			if err != nil && !isNoRows(err) && ctx.Err() == nil {
				log.Warn("delivery: cannot read the sink", "error", err)
			}
			return
		}
		var locked bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockSpace|id&0xffffffff).Scan(&locked); err != nil {
			if ctx.Err() == nil {
				log.Warn("delivery: cannot try the sink's lock", "error", err)
			}
			return
		}
		if locked {
			break
		}
		if !duty.Wait(ctx, takeoverPoll) {
			return
		}
	}
	log.Info("delivery: this server delivers the sink")
	d := &deliverer{m: m, q: q, id: id, name: name, log: log}
	d.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     m.opts.ProbeInterval,
		ReadyToTrip: func(c gobreaker.Counts) bool { return int(c.ConsecutiveFailures) >= m.opts.FailuresToOpen },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			log.Warn("delivery: circuit "+to.String(), "from", from.String())
			m.metrics.circuit(name, to)
		},
	})
	m.metrics.delivering(name, true)
	defer m.metrics.delivering(name, false)
	if err := d.run(ctx); err != nil && ctx.Err() == nil {
		log.Warn("delivery: stopped", "error", err)
	}
}

// deliverer delivers one sink while its server holds the sink's lock.
type deliverer struct {
	m       *Manager
	q       *db.Queries // on the connection that holds the lock
	id      int64
	name    string
	log     *slog.Logger
	breaker *gobreaker.CircuitBreaker[struct{}]
}

// errStale means the sink changed (paused, deleted, replayed) under a
// batch: the batch is dropped and the sink read again.
var errStale = errors.New("the sink changed")

// run delivers batch after batch until the sink is paused or deleted, or
// ctx is done.
func (d *deliverer) run(ctx context.Context) error {
	opts := d.m.opts
	var lingered bool
	for {
		sink, err := d.q.GetSink(ctx, d.id)
		if isNoRows(err) || (err == nil && sink.Paused) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read sink: %w", err)
		}
		page, err := opts.Store.Feed(ctx, filterOf(sink), sink.Cursor, int32(opts.BatchSize))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.log.Warn("delivery: cannot read the feed", "error", err)
			duty.Wait(ctx, takeoverPoll)
			continue
		}
		items, next := page.Items, page.NextAfter
		full := len(page.Items) == opts.BatchSize
		if p := sink.PendingTo; p != nil && *p > sink.Cursor && (!full || page.NextAfter >= *p) {
			// A batch was being sent when the last deliverer stopped:
			// send that same batch again, under the same webhook-id.
			// (Unless this server's batches are smaller and the page
			// does not reach it: then the page goes as a batch of its
			// own, and nothing is skipped.)
			for len(items) > 0 && items[len(items)-1].Seq > *p {
				items = items[:len(items)-1]
			}
			next = *p
		} else if len(items) > 0 && len(items) < opts.BatchSize && opts.Linger > 0 && !lingered {
			lingered = true
			if !duty.Wait(ctx, opts.Linger) {
				return nil
			}
			continue
		}
		lingered = false
		if len(items) == 0 {
			if next > sink.Cursor {
				if err := d.advance(ctx, sink, next, false); err != nil && !errors.Is(err, errStale) {
					return err
				}
				continue
			}
			if !duty.Wait(ctx, idlePoll) {
				return nil
			}
			continue
		}
		if err := d.deliver(ctx, sink, items, next); err != nil && !errors.Is(err, errStale) {
			return err
		}
	}
}

// deliver sends items until the destination acknowledges them, then moves
// the cursor to next. It returns errStale when the sink changed meanwhile.
func (d *deliverer) deliver(ctx context.Context, sink db.Sink, items []logstore.SealedEntry, next int64) error {
	opts := d.m.opts
	if sink.PendingTo == nil || *sink.PendingTo != next {
		n, err := d.q.SetSinkPending(ctx, db.SetSinkPendingParams{ID: d.id, Generation: sink.Generation, PendingTo: &next})
		if err != nil {
			return fmt.Errorf("record the pending batch: %w", err)
		}
		if n == 0 {
			return errStale
		}
	}
	msgID := fmt.Sprintf("vhl_%d_%d_%d_%d", sink.ID, sink.Generation, items[0].Seq, items[len(items)-1].Seq)
	body, err := d.body(sink, items)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// Between attempts, the sink may have been paused or replayed.
			now, err := d.q.GetSink(ctx, d.id)
			if err != nil || now.Paused || now.Generation != sink.Generation {
				return errStale
			}
		}
		start := time.Now()
		_, err := d.breaker.Execute(func() (struct{}, error) { return struct{}{}, d.send(ctx, sink, msgID, body) })
		if err == nil {
			d.m.metrics.delivered(d.name, len(items), time.Since(start))
			return d.advance(ctx, sink, next, true)
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			// Open: wait for the breaker to let a probe through.
			if !duty.Wait(ctx, jitter(opts.ProbeInterval/4)) {
				return nil
			}
			continue
		}
		d.m.metrics.failed(d.name)
		msg := err.Error()
		if _, err := d.q.SinkFailed(ctx, db.SinkFailedParams{ID: d.id, Generation: sink.Generation, LastError: &msg}); err != nil && ctx.Err() == nil {
			return fmt.Errorf("record a failure: %w", err)
		}
		backoff := min(minBackoff<<min(attempt, 20), opts.ProbeInterval)
		d.log.Warn("delivery: attempt failed; retrying", "error", err, "attempt", attempt+1,
			"first_seq", items[0].Seq, "last_seq", items[len(items)-1].Seq, "retry_in", backoff)
		if !duty.Wait(ctx, jitter(backoff)) {
			return nil
		}
	}
}

// advance moves the cursor to next.
func (d *deliverer) advance(ctx context.Context, sink db.Sink, next int64, delivered bool) error {
	n, err := d.q.AdvanceSink(ctx, db.AdvanceSinkParams{ID: d.id, Generation: sink.Generation, Cursor: next, Delivered: delivered})
	if err != nil {
		return fmt.Errorf("advance the cursor: %w", err)
	}
	if n == 0 {
		return errStale
	}
	return nil
}

// jitter returns d scaled by a random factor in [0.5, 1).
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// body renders items in the sink's format.
func (d *deliverer) body(sink db.Sink, items []logstore.SealedEntry) ([]byte, error) {
	entries := make([]json.RawMessage, len(items))
	for i, e := range items {
		b, err := d.m.opts.Encode(e)
		if err != nil {
			return nil, fmt.Errorf("encode entry %d: %w", e.Seq, err)
		}
		entries[i] = b
	}
	if sink.Format == FormatSplunkHEC {
		return splunkBody(items, entries)
	}
	return json.Marshal(WebhookPayload{
		Type:      WebhookType,
		Timestamp: items[len(items)-1].Timestamp.UTC(),
		Data: WebhookBatch{
			Sink: sink.Name, FirstSeq: items[0].Seq, LastSeq: items[len(items)-1].Seq, Entries: entries,
		},
	})
}

// WebhookType is the type of every webhook payload.
const WebhookType = "system_logs.batch"

// WebhookPayload is a webhook's body, shaped as Standard Webhooks
// suggests: a type, a timestamp (the batch's last entry's), and the data.
type WebhookPayload struct {
	Type      string       `json:"type"`
	Timestamp time.Time    `json:"timestamp"`
	Data      WebhookBatch `json:"data"`
}

// WebhookBatch is one batch of entries, in seq order.
type WebhookBatch struct {
	Sink     string `json:"sink"`
	FirstSeq int64  `json:"first_seq"`
	LastSeq  int64  `json:"last_seq"`
	// Entries are SystemLog objects, seq included.
	Entries []json.RawMessage `json:"entries"`
}

// splunkEvent is one HEC event.
type splunkEvent struct {
	Time       json.Number     `json:"time"`
	Source     string          `json:"source"`
	SourceType string          `json:"sourcetype"`
	Event      json.RawMessage `json:"event"`
}

// splunkBody is one HEC event object per entry, concatenated.
func splunkBody(items []logstore.SealedEntry, entries []json.RawMessage) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for i, e := range items {
		us := e.Timestamp.UnixMicro()
		sec, frac := us/1e6, us%1e6
		if frac < 0 {
			sec, frac = sec-1, frac+1e6
		}
		t := json.Number(strconv.FormatInt(sec, 10) + "." + fmt.Sprintf("%06d", frac))
		if err := enc.Encode(splunkEvent{Time: t, Source: "valhalla", SourceType: "valhalla:system_log", Event: entries[i]}); err != nil {
			return nil, fmt.Errorf("encode HEC event: %w", err)
		}
	}
	return b.Bytes(), nil
}

// send posts body once and returns nil on a 2xx.
func (d *deliverer) send(ctx context.Context, sink db.Sink, msgID string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, d.m.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sink.Url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", "valhalla-delivery")
	switch sink.Format {
	case FormatSplunkHEC:
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Splunk "+sink.Secret)
	default:
		wh, err := standardwebhooks.NewWebhook(sink.Secret)
		if err != nil {
			return fmt.Errorf("webhook secret: %w", err)
		}
		now := time.Now()
		sig, err := wh.Sign(msgID, now, body)
		if err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", msgID)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
	}
	resp, err := d.m.opts.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %s", d.m.opts.Timeout)
		}
		return fmt.Errorf("post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("destination answered %s", resp.Status)
	}
	return nil
}
