package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/delivery"
	"github.com/valhalla-platform/valhalla/internal/delivery/deliverytest"
	"github.com/valhalla-platform/valhalla/internal/httpapi"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a migrated database with a sealer every 20 ms.
type fixture struct {
	pool  *pgxpool.Pool
	store *logstore.Store
	sinks *delivery.Store
	ctx   context.Context
	wg    *sync.WaitGroup
	log   *lockedBuffer
}

func setup(t *testing.T) *fixture {
	t.Helper()
	pool, err := database.Open(t.Context(), pgtest.NewDatabase(t), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := database.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	key, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), "ledger.key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wg := &sync.WaitGroup{}
	t.Cleanup(func() { cancel(); wg.Wait() })
	sealer := ledger.NewSealer(ledger.SealerOptions{
		Connect: connector(pool), Key: key, Interval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	wg.Go(func() { sealer.Run(ctx) })
	return &fixture{pool: pool, store: logstore.New(pool), sinks: delivery.NewStore(pool), ctx: ctx, wg: wg, log: &lockedBuffer{}}
}

func connector(pool *pgxpool.Pool) func(ctx context.Context) (*pgx.Conn, error) {
	return func(ctx context.Context) (*pgx.Conn, error) {
		return pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	}
}

// deliver starts a manager with opts (filled in from f) until the test ends.
func (f *fixture) deliver(t *testing.T, opts delivery.Options) *delivery.Manager {
	t.Helper()
	opts.Pool, opts.Connect, opts.Store, opts.Encode = f.pool, connector(f.pool), f.store, httpapi.EncodeEntry
	opts.Logger = slog.New(slog.NewTextHandler(f.log, nil))
	m := delivery.NewManager(opts)
	f.wg.Go(func() { m.Run(f.ctx) })
	return m
}

// write stores n entries, categories and levels taking turns, and waits
// until they are sealed.
func (f *fixture) write(t *testing.T, n int) {
	t.Helper()
	levels := []string{"INFO", "ERROR", "DEBUG", "WARNING"}
	for i := range n {
		if _, err := f.store.Insert(t.Context(), logstore.Entry{
			Level: levels[i%len(levels)], Category: []string{"auth", "billing", "ops"}[i%3],
			Message: fmt.Sprintf("entry %d", i), CorrelationID: fmt.Sprintf("c-%d", i), Actor: "test",
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := int64(n)
	waitFor(t, "entries sealed", func() (bool, string) {
		size, err := f.store.TreeSize(t.Context())
		return err == nil && size >= want, fmt.Sprintf("tree size %d, err %v", size, err)
	})
}

// matching returns the seqs of every sealed entry filter matches.
func (f *fixture) matching(t *testing.T, filter logstore.Filter) []int64 {
	t.Helper()
	var seqs []int64
	after := int64(0)
	size, err := f.store.TreeSize(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for after < size {
		page, err := f.store.Feed(t.Context(), filter, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Items {
			seqs = append(seqs, e.Seq)
		}
		after = page.NextAfter
	}
	return seqs
}

// sink returns the named sink as sinks list shows it.
func (f *fixture) sink(t *testing.T, name string) delivery.Sink {
	t.Helper()
	list, err := f.sinks.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no sink %q", name)
	return delivery.Sink{}
}

func (f *fixture) create(t *testing.T, spec delivery.Spec) string {
	t.Helper()
	if spec.Format == "" {
		spec.Format = delivery.FormatWebhook
	}
	secret, err := f.sinks.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// fastRetries make a run of failures open the circuit quickly.
var fastRetries = delivery.Options{BatchSize: 20, Linger: 10 * time.Millisecond, Timeout: 2 * time.Second,
	FailuresToOpen: 3, ProbeInterval: 300 * time.Millisecond}

// TestDeliveryFailsThenRecovers: a destination that answers 503 for a
// while opens the circuit (health names the sink); once it is back, the
// circuit closes by itself and every entry arrives, in order, once.
func TestDeliveryFailsThenRecovers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.write(t, 70)
	var down sync.Mutex
	failing := true
	secret := "whsec_" + strings.Repeat("QUJD", 8) // 24 bytes
	r := deliverytest.NewReceiver(t, secret, func(int) (time.Duration, int) {
		down.Lock()
		defer down.Unlock()
		if failing {
			return 0, http.StatusServiceUnavailable
		}
		return 0, http.StatusOK
	})
	f.create(t, delivery.Spec{Name: "flaky", URL: r.URL, Secret: secret})
	f.deliver(t, fastRetries)
	health := f.sinks.HealthCheck(delivery.DefaultFailuresToOpen)
	waitFor(t, "the circuit opens and health names the sink", func() (bool, string) {
		err := health(t.Context())
		return err != nil && strings.Contains(f.log.String(), "circuit open"), fmt.Sprintf("health: %v", err)
	})
	if err := health(t.Context()); !errors.Is(err, delivery.ErrFailing) || !strings.Contains(err.Error(), "flaky") {
		t.Errorf("health while failing: %v, want ErrFailing naming the sink", err)
	}
	if s := f.sink(t, "flaky"); s.Cursor != 0 || s.LastError == nil || !strings.Contains(*s.LastError, "503") {
		t.Errorf("while failing, cursor %d last error %v; want 0 and the 503", s.Cursor, s.LastError)
	}
	down.Lock()
	failing = false
	down.Unlock()
	r.WaitAll(t, f.matching(t, logstore.Filter{}))
	waitFor(t, "health passes again", func() (bool, string) {
		err := health(t.Context())
		return err == nil, fmt.Sprint(err)
	})
	if !strings.Contains(f.log.String(), "circuit closed") {
		t.Errorf("the circuit never closed:\n%s", f.log)
	}
	waitFor(t, "the cursor reaches the end", func() (bool, string) {
		s := f.sink(t, "flaky")
		return s.Cursor == 70 && s.LagEntries == 0, fmt.Sprintf("cursor %d lag %d", s.Cursor, s.LagEntries)
	})
}

// TestDeliverySlowReceiver: a destination that takes its time (within the
// timeout) gets every entry once, in order, with no repeat.
func TestDeliverySlowReceiver(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.write(t, 60)
	secret := "whsec_" + strings.Repeat("U2xv", 8)
	r := deliverytest.NewReceiver(t, secret, func(int) (time.Duration, int) { return 150 * time.Millisecond, http.StatusAccepted })
	f.create(t, delivery.Spec{Name: "slow", URL: r.URL, Secret: secret})
	opts := fastRetries
	opts.BatchSize = 10
	f.deliver(t, opts)
	r.WaitAll(t, f.matching(t, logstore.Filter{}))
	if _, repeats := r.Got(); repeats != 0 {
		t.Errorf("%d batches repeated, though every answer came within the timeout", repeats)
	}
}

// TestDeliveryLateAcknowledgement: a destination that answers 2xx only
// after the deliverer gave up gets the batch again under the same
// webhook-id (a repeat, allowed), and never misses an entry.
func TestDeliveryLateAcknowledgement(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.write(t, 45)
	secret := "whsec_" + strings.Repeat("WFla", 10)
	r := deliverytest.NewReceiver(t, secret, func(n int) (time.Duration, int) {
		if n%3 == 0 {
			return 600 * time.Millisecond, http.StatusOK // after the 200 ms timeout
		}
		return 0, http.StatusOK
	})
	f.create(t, delivery.Spec{Name: "late", URL: r.URL, Secret: secret})
	opts := fastRetries
	opts.BatchSize, opts.Timeout = 10, 200*time.Millisecond
	f.deliver(t, opts)
	r.WaitAll(t, f.matching(t, logstore.Filter{}))
	waitFor(t, "a late answer recorded as a repeat", func() (bool, string) {
		_, repeats := r.Got()
		return repeats > 0, fmt.Sprintf("%d repeats", repeats)
	})
}

// TestDeliveryFilterAndReplay: a filtered sink gets only its entries, its
// cursor passes the others; replay sends again from a seq, as new batches.
func TestDeliveryFilterAndReplay(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.write(t, 48)
	secret := "whsec_" + strings.Repeat("RmlsdGVy", 4)
	r := deliverytest.NewReceiver(t, secret, nil)
	billing := "billing"
	filter := logstore.Filter{Category: &billing, MinLevel: "WARNING"}
	f.create(t, delivery.Spec{Name: "billing-errors", URL: r.URL, Secret: secret, Filter: filter})
	f.deliver(t, fastRetries)
	want := f.matching(t, filter)
	if len(want) == 0 || len(want) >= 48 {
		t.Fatalf("the filter matches %d of 48 entries; the test needs some", len(want))
	}
	r.WaitAll(t, want)
	waitFor(t, "the cursor passes the entries the filter drops", func() (bool, string) {
		s := f.sink(t, "billing-errors")
		return s.Cursor == 48, fmt.Sprintf("cursor %d", s.Cursor)
	})
	if err := f.sinks.Replay(t.Context(), "billing-errors", want[1]); err != nil {
		t.Fatal(err)
	}
	r.WaitAll(t, append(slices.Clone(want), want[1:]...))
	if err := f.sinks.Replay(t.Context(), "nope", 1); !errors.Is(err, delivery.ErrNotFound) {
		t.Errorf("replay of a missing sink: %v, want ErrNotFound", err)
	}
}

// TestDeliverySplunkHEC: a splunk-hec sink sends one HEC event object per
// entry with the token and epoch-seconds time.
func TestDeliverySplunkHEC(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.write(t, 25)
	var mu sync.Mutex
	var events []map[string]json.RawMessage
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		auth = append(auth, req.Header.Get("Authorization"))
		dec := json.NewDecoder(req.Body)
		for {
			var e map[string]json.RawMessage
			if err := dec.Decode(&e); err == io.EOF {
				break
			} else if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			events = append(events, e)
		}
		_, _ = w.Write([]byte(`{"text":"Success","code":0}`))
	}))
	t.Cleanup(srv.Close)
	f.create(t, delivery.Spec{Name: "splunk", URL: srv.URL + "/services/collector/event", Format: delivery.FormatSplunkHEC, Secret: "0b4a7e0c-hec-token"})
	f.deliver(t, fastRetries)
	waitFor(t, "every event received", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(events) >= 25, fmt.Sprintf("%d events", len(events))
	})
	mu.Lock()
	defer mu.Unlock()
	for _, a := range auth {
		if a != "Splunk 0b4a7e0c-hec-token" {
			t.Errorf("Authorization %q", a)
		}
	}
	for i, e := range events {
		var entry api.SystemLog
		var epoch float64
		if err := json.Unmarshal(e["event"], &entry); err != nil || entry.Seq == nil || *entry.Seq != int64(i+1) {
			t.Fatalf("event %d: %s (%v)", i, e["event"], err)
		}
		if err := json.Unmarshal(e["time"], &epoch); err != nil || time.Duration(epoch*1e9-float64(entry.Timestamp.UnixNano())).Abs() > time.Millisecond {
			t.Errorf("event %d: time %s, entry timestamp %s", i, e["time"], entry.Timestamp)
		}
		if string(e["sourcetype"]) != `"valhalla:system_log"` || string(e["source"]) != `"valhalla"` {
			t.Errorf("event %d: source %s sourcetype %s", i, e["source"], e["sourcetype"])
		}
	}
}

// TestCreateRefusesBadSinks: bad settings are refused and store nothing.
func TestCreateRefusesBadSinks(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ops := "ops"
	empty := ""
	for _, tc := range []struct {
		name string
		spec delivery.Spec
	}{
		{"bad name", delivery.Spec{Name: "has space", URL: "http://x", Format: "webhook"}},
		{"no url", delivery.Spec{Name: "a", URL: "", Format: "webhook"}},
		{"ftp url", delivery.Spec{Name: "a", URL: "ftp://x/y", Format: "webhook"}},
		{"credentials in url", delivery.Spec{Name: "a", URL: "http://u:p@x/", Format: "webhook"}},
		{"unknown format", delivery.Spec{Name: "a", URL: "http://x", Format: "syslog"}},
		{"secret without whsec_", delivery.Spec{Name: "a", URL: "http://x", Format: "webhook", Secret: strings.Repeat("QUJD", 8)}},
		{"short secret", delivery.Spec{Name: "a", URL: "http://x", Format: "webhook", Secret: "whsec_QUJD"}},
		{"splunk without token", delivery.Spec{Name: "a", URL: "http://x", Format: "splunk-hec"}},
		{"token with space", delivery.Spec{Name: "a", URL: "http://x", Format: "splunk-hec", Secret: "a b"}},
		{"unknown level", delivery.Spec{Name: "a", URL: "http://x", Format: "webhook", Filter: logstore.Filter{MinLevel: "LOUD"}}},
		{"empty category", delivery.Spec{Name: "a", URL: "http://x", Format: "webhook", Filter: logstore.Filter{Category: &empty}}},
		{"other filters", delivery.Spec{Name: "a", URL: "http://x", Format: "webhook", Filter: logstore.Filter{UserID: &ops}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.sinks.Create(t.Context(), tc.spec); !errors.Is(err, delivery.ErrInvalid) {
				t.Errorf("Create: %v, want ErrInvalid", err)
			}
		})
	}
	if list, _ := f.sinks.List(t.Context()); len(list) != 0 {
		t.Errorf("%d sinks stored after refusals", len(list))
	}
	secret := f.create(t, delivery.Spec{Name: "a", URL: "https://example.com/hook"})
	if _, err := standardwebhooks.NewWebhook(secret); err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("generated secret %q: %v", secret, err)
	}
	if _, err := f.sinks.Create(t.Context(), delivery.Spec{Name: "a", URL: "https://example.com/other", Format: "webhook"}); !errors.Is(err, delivery.ErrExists) {
		t.Errorf("second sink named a: %v, want ErrExists", err)
	}
}

// waitFor polls cond every 10 ms, failing after 30 s with what last said.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deliverytest.Poll(t, 30*time.Second, what, cond)
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// backlogBound bounds each wait of TestDeliveryBacklog.
const backlogBound = 5 * time.Minute

// TestDeliveryBacklog: a sink created over a backlog of 10 000 entries
// catches up in full batches, every entry once and in order; the log line
// is the delivery throughput to a local receiver (docs/delivery.md).
func TestDeliveryBacklog(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const n = 10_000
	for range n / 1000 {
		batch := make([]logstore.Entry, 1000)
		for i := range batch {
			batch[i] = logstore.Entry{Level: "INFO", Category: "bulk", Message: fmt.Sprintf("backlog %d", i), CorrelationID: "bulk", Actor: "test"}
		}
		if _, _, err := f.store.InsertBatch(t.Context(), nil, batch); err != nil {
			t.Fatal(err)
		}
	}
	// The bounds are for a busy machine: under go test -race -count=10
	// beside other packages, sealing and delivering 10,000 entries took
	// more than 30 and 60 s.
	deliverytest.Poll(t, backlogBound, "backlog sealed", func() (bool, string) {
		size, err := f.store.TreeSize(t.Context())
		return err == nil && size == n, fmt.Sprintf("tree size %d, err %v", size, err)
	})
	secret := "whsec_" + strings.Repeat("QmFj", 8)
	r := deliverytest.NewReceiver(t, secret, nil)
	start := time.Now()
	f.create(t, delivery.Spec{Name: "backlog", URL: r.URL, Secret: secret})
	f.deliver(t, delivery.Options{BatchSize: 500, Linger: 0})
	r.WaitAllWithin(t, f.matching(t, logstore.Filter{}), backlogBound)
	took := time.Since(start)
	t.Logf("delivered a backlog of %d entries in batches of 500 to a local receiver in %s: %.0f entries/s (from creating the sink)",
		n, took.Round(time.Millisecond), n/took.Seconds())
}
