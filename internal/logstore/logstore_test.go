package logstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// setup returns a store over a fresh, migrated database.
func setup(t *testing.T) (*logstore.Store, *pgxpool.Pool) {
	t.Helper()
	ctx := t.Context()
	pool, err := database.Open(ctx, pgtest.NewDatabase(t), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := database.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return logstore.New(pool), pool
}

func count(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM system_logs").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestInsertBatchIsAtomic: a row the database refuses rejects the whole batch.
func TestInsertBatchIsAtomic(t *testing.T) {
	t.Parallel()
	store, pool := setup(t)
	entries := []logstore.Entry{
		{Level: "INFO", Category: "c", Message: "ok", CorrelationID: "x"},
		{Level: "INFO", Category: strings.Repeat("c", 65), Message: "too long a category", CorrelationID: "x"},
		{Level: "INFO", Category: "c", Message: "ok", CorrelationID: "x"},
	}
	if _, _, err := store.InsertBatch(t.Context(), nil, entries); err == nil {
		t.Fatal("batch with an invalid row was accepted")
	}
	if n := count(t, pool); n != 0 {
		t.Errorf("%d rows stored from a failed batch", n)
	}
	stored, _, err := store.InsertBatch(t.Context(), nil, []logstore.Entry{entries[0], entries[2]})
	if err != nil || len(stored) != 2 || count(t, pool) != 2 {
		t.Fatalf("valid batch: %v, %d returned, %d stored", err, len(stored), count(t, pool))
	}
}

func TestGetUnknownIsErrNotFound(t *testing.T) {
	t.Parallel()
	store, _ := setup(t)
	_, err := store.Get(t.Context(), uuid.Must(uuid.NewV7()))
	if !errors.Is(err, logstore.ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
}

func TestNULIsErrInvalidText(t *testing.T) {
	t.Parallel()
	store, _ := setup(t)
	_, err := store.Insert(t.Context(), logstore.Entry{Level: "INFO", Category: "c", Message: "a\x00b", CorrelationID: "x"})
	if !errors.Is(err, logstore.ErrInvalidText) {
		t.Fatalf("err %v, want ErrInvalidText", err)
	}
}

// TestUnavailable: with PostgreSQL stopped, every call says so.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	pool, err := database.Open(t.Context(), cluster.ConnString("valhalla"), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := database.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	store := logstore.New(pool)
	if err := cluster.StopServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	_, err = store.Insert(ctx, logstore.Entry{Level: "INFO", Category: "c", Message: "m", CorrelationID: "x"})
	if !errors.Is(err, database.ErrUnavailable) {
		t.Errorf("insert: %v, want ErrUnavailable", err)
	}
	_, _, err = store.InsertBatch(ctx, nil, []logstore.Entry{{Level: "INFO", Category: "c", Message: "m", CorrelationID: "x"}})
	if !errors.Is(err, database.ErrUnavailable) {
		t.Errorf("batch: %v, want ErrUnavailable", err)
	}
	if _, err := store.Get(ctx, uuid.Must(uuid.NewV7())); !errors.Is(err, database.ErrUnavailable) {
		t.Errorf("get: %v, want ErrUnavailable", err)
	}
	if _, err := store.List(ctx, logstore.Filter{}, 10, "", 100); !errors.Is(err, database.ErrUnavailable) {
		t.Errorf("list: %v, want ErrUnavailable", err)
	}
}

// TestListTiesBrokenByID: entries with one timestamp (a batch) page in id
// order, newest id first, without skipping or repeating across pages.
func TestListTiesBrokenByID(t *testing.T) {
	t.Parallel()
	store, _ := setup(t)
	entries := make([]logstore.Entry, 10)
	for i := range entries {
		entries[i] = logstore.Entry{Level: "INFO", Category: "tie", Message: "m", CorrelationID: "x"}
	}
	stored, _, err := store.InsertBatch(t.Context(), nil, entries)
	if err != nil {
		t.Fatal(err)
	}
	var got []uuid.UUID
	cursor := ""
	for {
		page, err := store.List(t.Context(), logstore.Filter{}, 3, cursor, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Items {
			got = append(got, r.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(got) != len(stored) {
		t.Fatalf("%d listed, %d stored", len(got), len(stored))
	}
	for i, id := range got {
		if want := stored[len(stored)-1-i].ID; id != want {
			t.Fatalf("position %d: %s, want %s (ids descending)", i, id, want)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 26, 1, 2, 3, 456789000, time.UTC)
	id := uuid.Must(uuid.NewV7())
	gotTS, gotID, err := logstore.DecodeCursor(logstore.EncodeCursor(ts, id))
	if err != nil || !gotTS.Equal(ts) || gotID != id {
		t.Fatalf("round trip: %v %v %v", gotTS, gotID, err)
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(logstore.EncodeCursor(time.Unix(1700000000, 0), uuid.Nil))
	f.Add("")
	f.Add("not-a-cursor")
	f.Add("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		ts, id, err := logstore.DecodeCursor(s)
		if err != nil {
			if !errors.Is(err, logstore.ErrInvalidCursor) {
				t.Fatalf("error %v does not wrap ErrInvalidCursor", err)
			}
			return
		}
		// Whatever decodes encodes back to a cursor that decodes the same.
		ts2, id2, err := logstore.DecodeCursor(logstore.EncodeCursor(ts, id))
		if err != nil || !ts2.Equal(ts) || id2 != id {
			t.Fatalf("%q: re-encoding changed the position", s)
		}
	})
}

// TestTraceIDFilter: the trace_id filter pages through one trace's entries
// in keyset order on its own index; the database refuses a malformed id.
func TestTraceIDFilter(t *testing.T) {
	t.Parallel()
	store, pool := setup(t)
	trace, other := "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
	entry := func(id *string) logstore.Entry {
		return logstore.Entry{Level: "INFO", Category: "c", Message: "m", CorrelationID: "x", TraceID: id}
	}
	if _, _, err := store.InsertBatch(t.Context(), nil, []logstore.Entry{entry(&trace), entry(&other), entry(nil), entry(&trace), entry(&trace)}); err != nil {
		t.Fatal(err)
	}
	page, err := store.List(t.Context(), logstore.Filter{TraceID: &trace}, 2, "", 100)
	if err != nil || len(page.Items) != 2 || page.NextCursor == "" || page.Total == nil || *page.Total != 3 {
		t.Fatalf("first page: %v, %d items, total %v", err, len(page.Items), page.Total)
	}
	next, err := store.List(t.Context(), logstore.Filter{TraceID: &trace}, 2, page.NextCursor, 0)
	if err != nil || len(next.Items) != 1 || next.NextCursor != "" {
		t.Fatalf("second page: %v, %d items", err, len(next.Items))
	}
	for _, r := range append(page.Items, next.Items...) {
		if r.TraceID == nil || *r.TraceID != trace {
			t.Errorf("entry with trace_id %v", r.TraceID)
		}
	}

	bad := "4BF92F3577B34DA6A3CE929D0E0E4736"
	if _, err := store.Insert(t.Context(), entry(&bad)); err == nil {
		t.Error("stored an uppercase trace id")
	}

	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(t.Context(), "RESET enable_seqscan")
	var plan strings.Builder
	rows, err := conn.Query(t.Context(), `EXPLAIN SELECT * FROM system_logs WHERE trace_id = $1
		ORDER BY "timestamp" DESC, id DESC LIMIT 51`, trace)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Each partition's copy of system_logs_trace_id_idx is named for its
	// columns, and the partitions' scans merge in keyset order.
	if !strings.Contains(plan.String(), "_trace_id_timestamp_id_idx") || strings.Contains(plan.String(), "Sort  (") {
		t.Errorf("the trace_id filter does not read its index in order:\n%s", plan.String())
	}
}

// TestInsertBatchWithKey: the same key with the same request replays the first
// write; with another request it is ErrKeyReused; keys are per actor; a
// failed write leaves the key free; an expired key is forgotten.
func TestInsertBatchWithKey(t *testing.T) {
	t.Parallel()
	store, pool := setup(t)
	ctx := t.Context()
	entry := logstore.Entry{Level: "INFO", Category: "c", Message: "m", CorrelationID: "x", Actor: "a"}
	key := logstore.Key{Actor: "a", Name: "k-1", Request: []byte("req-1")}

	first, replayed, err := store.InsertBatch(ctx, &key, []logstore.Entry{entry, entry})
	if err != nil || replayed || len(first) != 2 {
		t.Fatalf("first write: %v %v %d", err, replayed, len(first))
	}
	again, replayed, err := store.InsertBatch(ctx, &key, []logstore.Entry{entry, entry})
	if err != nil || !replayed || len(again) != 2 || again[0].ID != first[0].ID || again[1].ID != first[1].ID ||
		!again[0].Timestamp.Equal(first[0].Timestamp) {
		t.Fatalf("retry: %v %v %+v, want the first write's entries in order", err, replayed, again)
	}
	if _, _, err := store.InsertBatch(ctx, &logstore.Key{Actor: "a", Name: "k-1", Request: []byte("req-2")}, []logstore.Entry{entry}); !errors.Is(err, logstore.ErrKeyReused) {
		t.Errorf("same key, other request: %v", err)
	}
	if _, replayed, err := store.InsertBatch(ctx, &logstore.Key{Actor: "b", Name: "k-1", Request: []byte("req-1")}, []logstore.Entry{entry}); err != nil || replayed {
		t.Errorf("another actor's key: %v %v", err, replayed)
	}
	if n := count(t, pool); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}

	bad := entry
	bad.Category = strings.Repeat("c", 65)
	failing := logstore.Key{Actor: "a", Name: "k-2", Request: []byte("req-3")}
	if _, _, err := store.InsertBatch(ctx, &failing, []logstore.Entry{bad}); err == nil {
		t.Fatal("invalid entry accepted")
	}
	if _, replayed, err := store.InsertBatch(ctx, &failing, []logstore.Entry{entry}); err != nil || replayed {
		t.Errorf("a key whose write failed must stay free: %v %v", err, replayed)
	}

	if _, err := pool.Exec(ctx, "UPDATE idempotency_keys SET created_at = created_at - interval '25 hours' WHERE key = 'k-1' AND actor = 'a'"); err != nil {
		t.Fatal(err)
	}
	if _, replayed, err := store.InsertBatch(ctx, &logstore.Key{Actor: "a", Name: "k-1", Request: []byte("req-2")}, []logstore.Entry{entry}); err != nil || replayed {
		t.Errorf("expired key: %v %v, want a fresh write", err, replayed)
	}
	if _, err := pool.Exec(ctx, "UPDATE idempotency_keys SET created_at = created_at - interval '25 hours' WHERE actor = 'b'"); err != nil {
		t.Fatal(err)
	}
	if n, err := store.ExpireKeys(ctx); err != nil || n != 1 {
		t.Errorf("ExpireKeys = %d, %v, want 1", n, err)
	}
}

// TestInsertBatchWithKeyConcurrently: requests racing with one key write once and
// all get the same entries.
func TestInsertBatchWithKeyConcurrently(t *testing.T) {
	t.Parallel()
	store, pool := setup(t)
	entry := logstore.Entry{Level: "INFO", Category: "c", Message: "m", CorrelationID: "x", Actor: "a"}
	key := logstore.Key{Actor: "a", Name: "race", Request: []byte("req")}
	const n = 8
	ids := make([]uuid.UUID, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rows, _, err := store.InsertBatch(t.Context(), &key, []logstore.Entry{entry})
			errs[i] = err
			if err == nil {
				ids[i] = rows[0].ID
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Errorf("request %d: %v, id %s, want %s", i, errs[i], ids[i], ids[0])
		}
	}
	if got := count(t, pool); got != 1 {
		t.Errorf("%d rows from %d racing requests with one key, want 1", got, n)
	}
}

// TestPageBoundedInBytes: a page of large entries holds fewer than its
// limit, at most about MaxPageBytes, and its cursor continues where it
// stopped: every entry is seen once.
func TestPageBoundedInBytes(t *testing.T) {
	t.Parallel()
	store, _ := setup(t)
	const n = 100
	ctxJSON := json.RawMessage(`{"pad":"` + strings.Repeat("p", 60<<10) + `"}`)
	entries := make([]logstore.Entry, n)
	for i := range entries {
		entries[i] = logstore.Entry{Level: "INFO", Category: "big", Message: fmt.Sprint(i), CorrelationID: "c", Actor: "svc", Context: ctxJSON}
	}
	if _, _, err := store.InsertBatch(t.Context(), nil, entries); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		page, err := store.List(t.Context(), logstore.Filter{}, 500, cursor, 0)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		size := 0
		for _, r := range page.Items {
			if seen[r.Message] {
				t.Fatalf("entry %s seen twice", r.Message)
			}
			seen[r.Message] = true
			size += len(r.Context) + len(r.Message)
		}
		if size > logstore.MaxPageBytes+len(ctxJSON)+1024 {
			t.Errorf("page %d holds %d bytes, over the bound of %d", pages, size, logstore.MaxPageBytes)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != n || pages < 2 {
		t.Errorf("saw %d of %d entries in %d pages, want all, in more than one page", len(seen), n, pages)
	}
}

// TestReadsRunOutOfTimeOnTheirOwnPool: with a read pool whose statement
// timeout a count cannot meet, List returns ErrReadTimeout (not an
// outage), and writes on the main pool go on.
func TestReadsRunOutOfTimeOnTheirOwnPool(t *testing.T) {
	t.Parallel()
	_, pool := setup(t)
	if _, err := pool.Exec(t.Context(), `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, context, actor)
		SELECT gen_random_uuid(), now() - i * interval '1 ms', 'INFO', 'bulk', 'm', 'c', '{}', 'svc'
		FROM generate_series(1, 200000) AS i`); err != nil {
		t.Fatal(err)
	}
	cfg := pool.Config()
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "1"
	readPool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(readPool.Close)
	store := logstore.New(pool, logstore.WithReadPool(readPool))
	_, err = store.List(t.Context(), logstore.Filter{}, 10, "", logstore.MaxCount)
	if !errors.Is(err, logstore.ErrReadTimeout) || errors.Is(err, database.ErrUnavailable) {
		t.Fatalf("a count past the read timeout: %v, want ErrReadTimeout", err)
	}
	if _, err := store.Insert(t.Context(), logstore.Entry{Level: "INFO", Category: "c", Message: "m", CorrelationID: "c", Actor: "svc"}); err != nil {
		t.Errorf("a write while reads time out: %v", err)
	}
}

// TestBatchWritersTakeTurns: with one batch writer, a batch waits for the
// one in the database to finish before it begins (it does not queue in
// PostgreSQL beside it), gives up when its context does, and goes in once
// the first is done.
func TestBatchWritersTakeTurns(t *testing.T) {
	t.Parallel()
	_, pool := setup(t)
	store := logstore.New(pool, logstore.WithBatchWriters(1))
	batch := []logstore.Entry{{Level: "INFO", Category: "c", Message: "batch", CorrelationID: "x"}}
	// A lock the test holds stops the first batch in the database.
	lock, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(t.Context()) }()
	if _, err := lock.Exec(t.Context(), "LOCK TABLE ledger_queue IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { _, _, err := store.InsertBatch(t.Context(), nil, batch); first <- err }()
	lockWaiters := func() int {
		var n int
		if err := pool.QueryRow(t.Context(),
			"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); lockWaiters() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first batch never reached the lock")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, _, err = store.InsertBatch(ctx, nil, batch)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "batch writer") {
		t.Errorf("second batch while the first is in the database: %v, want it to wait for a batch writer until its context ends", err)
	}
	if n := lockWaiters(); n != 1 {
		t.Errorf("%d sessions wait for the lock, want the first batch's alone", n)
	}
	if err := lock.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if _, _, err := store.InsertBatch(t.Context(), nil, batch); err != nil {
		t.Fatalf("a batch after the first: %v", err)
	}
	if n := count(t, pool); n != 2 {
		t.Errorf("%d rows stored, want 2", n)
	}
}
