package follow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/internal/apiclient"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/follow"
	"github.com/valhalla-platform/valhalla/internal/httpapi"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a migrated database with a sealer every 20 ms and a hub that
// the sealer wakes after each seal, as serve wires them.
type fixture struct {
	store *logstore.Store
	hub   *follow.Hub
}

func setup(t *testing.T, opts follow.Options) *fixture {
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
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	store := logstore.New(pool)
	opts.Store, opts.Encode = store, httpapi.EncodeEntry
	hub := follow.New(opts)
	sealer := ledger.NewSealer(ledger.SealerOptions{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
		},
		Key: key, Interval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Sealed: func(int, int64, []time.Duration) { hub.Wake() },
	})
	wg.Add(2)
	go func() { defer wg.Done(); sealer.Run(ctx) }()
	go func() { defer wg.Done(); hub.Run(ctx) }()
	return &fixture{store: store, hub: hub}
}

// gatedWriter collects a stream; while held, every write blocks, as a
// client that stopped reading.
type gatedWriter struct {
	gate sync.Mutex
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.gate.Lock()
	defer w.gate.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *gatedWriter) Flush() error { return nil }

func (w *gatedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// events parses what w holds.
func (w *gatedWriter) events(t *testing.T) []apiclient.Event {
	t.Helper()
	var out []apiclient.Event
	if err := apiclient.ReadEvents(bytes.NewReader([]byte(w.String())), func(e apiclient.Event) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond every 5 ms, failing after 30 s with what last said.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) write(t *testing.T, n int, category string) {
	t.Helper()
	entries := make([]logstore.Entry, n)
	for i := range entries {
		entries[i] = logstore.Entry{Level: "INFO", Category: category, Message: fmt.Sprintf("entry %d", i), CorrelationID: "c", Actor: "test"}
	}
	if _, _, err := f.store.InsertBatch(t.Context(), nil, entries); err != nil {
		t.Fatal(err)
	}
}

// entrySeqs returns the seqs of the entry events, checking each id is its
// entry's seq.
func entrySeqs(t *testing.T, events []apiclient.Event) []int64 {
	t.Helper()
	var seqs []int64
	for _, e := range events {
		if e.Name != follow.EventEntry {
			continue
		}
		var entry struct{ Seq int64 }
		if err := json.Unmarshal(e.Data, &entry); err != nil {
			t.Fatal(err)
		}
		if strconv.FormatInt(entry.Seq, 10) != e.ID {
			t.Errorf("event id %q carries the entry of seq %d", e.ID, entry.Seq)
		}
		seqs = append(seqs, entry.Seq)
	}
	return seqs
}

// TestSlowSubscriberOverflows: a subscriber that stops reading does not
// make the server buffer without bound: it gets an overflow event naming
// the seq to resume after, its stream ends, and a stream resumed there
// gets the rest, with no gap and no repeat.
func TestSlowSubscriberOverflows(t *testing.T) {
	f := setup(t, follow.Options{Buffer: 4, Poll: 10 * time.Millisecond})
	const total = 60
	sub, err := f.hub.Reserve(logstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	w := &gatedWriter{}
	done := make(chan error, 1)
	go func() { done <- sub.Stream(t.Context(), w, nil) }()
	waitFor(t, "the stream to join the fan-out", func() (bool, string) {
		return f.hub.Attached() == 1, fmt.Sprint(f.hub.Attached())
	})
	w.gate.Lock() // the client stops reading
	f.write(t, total, "flood")
	waitFor(t, "the overflow to drop the subscriber", func() (bool, string) {
		return f.hub.Attached() == 0, fmt.Sprint(f.hub.Attached())
	})
	w.gate.Unlock()
	if err := <-done; err != nil {
		t.Fatalf("stream: %v", err)
	}
	events := w.events(t)
	seqs := entrySeqs(t, events)
	lastEvent := events[len(events)-1]
	if lastEvent.Name != follow.EventOverflow {
		t.Fatalf("last event %q %s, want overflow", lastEvent.Name, lastEvent.Data)
	}
	var end follow.End
	if err := json.Unmarshal(lastEvent.Data, &end); err != nil {
		t.Fatal(err)
	}
	if len(seqs) >= total || len(seqs) > 4+1 {
		t.Errorf("the overflowed stream got %d entries, want at most its buffer (4) and the one being written", len(seqs))
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("entries %v, want 1, 2, … in order", seqs)
		}
	}
	if want := int64(len(seqs)); end.After != want {
		t.Errorf("overflow says resume after %d, want %d (the last entry written)", end.After, want)
	}
	if f.hub.Open() != 0 {
		t.Errorf("%d streams still hold a slot", f.hub.Open())
	}

	// Resume where it said.
	sub, err = f.hub.Reserve(logstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	w2 := &gatedWriter{}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- sub.Stream(ctx, w2, &end.After) }()
	waitFor(t, "the rest of the entries", func() (bool, string) {
		s := entrySeqs(t, w2.events(t))
		return len(s) > 0 && s[len(s)-1] == total, fmt.Sprint(s)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rest := entrySeqs(t, w2.events(t))
	for i, s := range rest {
		if s != end.After+int64(i)+1 {
			t.Fatalf("resumed entries %v, want %d…%d", rest, end.After+1, total)
		}
	}
}

// TestSealWakesTheHub: on the sequencer's server an entry reaches the
// streams once it is sealed, not at the hub's next poll, and entries sealed
// while nobody followed are not dispatched to a stream that starts later.
func TestSealWakesTheHub(t *testing.T) {
	f := setup(t, follow.Options{Poll: time.Hour})
	f.write(t, 5, "unfollowed")
	waitFor(t, "the hub to pass the unfollowed entries", func() (bool, string) {
		size, err := f.store.TreeSize(t.Context())
		return err == nil && size == 5 && f.hub.Position() == 5, fmt.Sprint(size, err, f.hub.Position())
	})
	sub, err := f.hub.Reserve(logstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	w := &gatedWriter{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sub.Stream(ctx, w, nil) }()
	waitFor(t, "the stream to join the fan-out", func() (bool, string) {
		return f.hub.Attached() == 1, fmt.Sprint(f.hub.Attached())
	})
	f.write(t, 3, "followed")
	waitFor(t, "the followed entries, an hour before the hub's poll", func() (bool, string) {
		s := entrySeqs(t, w.events(t))
		return len(s) == 3, fmt.Sprint(s)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := entrySeqs(t, w.events(t)); s[0] != 6 || s[2] != 8 {
		t.Errorf("the stream got seqs %v, want 6, 7, 8", s)
	}
}

// TestHeartbeatAndShutdown: an idle stream gets comment heartbeats, and
// closing the hub ends it with a shutdown event.
func TestHeartbeatAndShutdown(t *testing.T) {
	f := setup(t, follow.Options{Heartbeat: 20 * time.Millisecond})
	f.write(t, 3, "before")
	waitFor(t, "the entries to be sealed", func() (bool, string) {
		n, err := f.store.TreeSize(t.Context())
		return n == 3, fmt.Sprint(n, err)
	})
	sub, err := f.hub.Reserve(logstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	w := &gatedWriter{}
	done := make(chan error, 1)
	after := int64(1)
	go func() { done <- sub.Stream(context.Background(), w, &after) }()
	waitFor(t, "a heartbeat", func() (bool, string) {
		return bytes.Contains([]byte(w.String()), []byte("\n: heartbeat\n\n")), w.String()
	})
	f.hub.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	events := w.events(t)
	if got := entrySeqs(t, events); fmt.Sprint(got) != "[2 3]" {
		t.Errorf("entries after 1: %v, want [2 3]", got)
	}
	last := events[len(events)-1]
	var end follow.End
	if err := json.Unmarshal(last.Data, &end); last.Name != follow.EventShutdown || err != nil || end.After != 3 {
		t.Errorf("last event %q %s, want shutdown resuming after 3", last.Name, last.Data)
	}
	if events[0].Retry != follow.RetryMillis*time.Millisecond {
		t.Errorf("retry hint %s, want %dms", events[0].Retry, follow.RetryMillis)
	}
	if _, err := f.hub.Reserve(logstore.Filter{}); err == nil {
		t.Error("a closed hub accepted a stream")
	}
}
