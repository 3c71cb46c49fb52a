package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/duty"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/lifecycle"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// setup returns a pool over a fresh, migrated database.
func setup(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := database.Open(t.Context(), pgtest.NewDatabase(t), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := database.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// partitionOf returns the partition that holds the entry id.
func partitionOf(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) string {
	t.Helper()
	var name string
	if err := pool.QueryRow(t.Context(), "SELECT tableoid::regclass::text FROM system_logs WHERE id = $1", id).Scan(&name); err != nil {
		t.Fatalf("find entry %s: %v", id, err)
	}
	return name
}

func names(parts []lifecycle.Partition) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p.Name)
	}
	return out
}

// TestWriteWithoutItsPartitionIsKept: a write whose partition does not
// exist yet (the maintainer was down) is stored in the default partition,
// read back, and moved into its partition when the maintainer creates it.
func TestWriteWithoutItsPartitionIsKept(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ctx := t.Context()
	today := "system_logs_p" + time.Now().UTC().Format("20060102")
	if _, err := pool.Exec(ctx, "DROP TABLE "+pgx.Identifier{today}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	store := logstore.New(pool)
	stored, err := store.Insert(ctx, logstore.Entry{Level: "INFO", Category: "c", Message: "no partition yet", CorrelationID: "r", Actor: "a"})
	if err != nil {
		t.Fatalf("a write without its partition was refused: %v", err)
	}
	if got := partitionOf(t, pool, stored.ID); got != "system_logs_default" {
		t.Fatalf("stored in %s, want the default partition", got)
	}
	if got, err := store.Get(ctx, stored.ID); err != nil || got.Message != stored.Message {
		t.Fatalf("get from the default partition: %v %+v", err, got)
	}

	rep, err := lifecycle.New(pool, lifecycle.Options{}).Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names(rep.Created), today) || rep.Moved != 1 {
		t.Fatalf("created %v, moved %d; want %s created and the entry moved", names(rep.Created), rep.Moved, today)
	}
	if got := partitionOf(t, pool, stored.ID); got != today {
		t.Fatalf("after maintenance the entry is in %s, want %s", got, today)
	}
	page, err := store.List(ctx, logstore.Filter{}, 10, "", 0)
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != stored.ID {
		t.Fatalf("list after the move: %v %+v", err, page.Items)
	}
}

// TestPartitionsAhead: a run creates the current interval's partition and
// the next two, a second run nothing; a narrower interval fills on from
// the last partition; one maintainer runs at a time.
func TestPartitionsAhead(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ctx := t.Context()
	now := time.Date(2031, 3, 10, 15, 0, 0, 0, time.UTC)
	m := lifecycle.New(pool, lifecycle.Options{Now: func() time.Time { return now }})
	rep, err := m.Run(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"system_logs_p20310310", "system_logs_p20310311", "system_logs_p20310312"}
	if got := names(rep.Created); !slices.Equal(got, want) {
		t.Fatalf("dry run would create %v, want %v", got, want)
	}
	if parts, _ := lifecycle.List(ctx, pool); slices.Contains(names(parts), want[0]) {
		t.Fatal("the dry run created a partition")
	}
	if rep, err = m.Run(ctx, false); err != nil || !slices.Equal(names(rep.Created), want) {
		t.Fatalf("run created %v (%v), want %v", names(rep.Created), err, want)
	}
	if rep, err = m.Run(ctx, false); err != nil || len(rep.Created) != 0 {
		t.Fatalf("a second run created %v (%v)", names(rep.Created), err)
	}

	later := now.Add(48 * time.Hour) // 2031-03-12 15:00, in the last daily partition
	hourly := lifecycle.New(pool, lifecycle.Options{Interval: 6 * time.Hour, Now: func() time.Time { return later }})
	rep, err = hourly.Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	// Three 6-hour intervals from 12:00 are due; the daily partition
	// covers the first two, and the third starts at its end.
	if got := names(rep.Created); !slices.Equal(got, []string{"system_logs_p20310313"}) || !rep.Created[0].To.Equal(time.Date(2031, 3, 13, 6, 0, 0, 0, time.UTC)) {
		t.Fatalf("6h interval created %v %+v", got, rep.Created)
	}

	// Another maintainer holds the lock: a run says so and does nothing.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var key int64
	if err := conn.QueryRow(ctx, "SELECT x'76686c5f6c6966'::bigint").Scan(&key); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(ctx, false); !errors.Is(err, lifecycle.ErrBusy) {
		t.Fatalf("run while another maintains: %v, want ErrBusy", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", key); err != nil {
		t.Fatal(err)
	}
}

// testKey returns a fresh ledger key.
func testKey(t testing.TB) *ledger.Key {
	t.Helper()
	skey, err := ledger.GenerateKey("valhalla-ledger-test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ledger.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// sealAll runs a sequencer until nothing waits to be sealed.
func sealAll(t *testing.T, pool *pgxpool.Pool, key *ledger.Key) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sealer := ledger.NewSealer(ledger.SealerOptions{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
		},
		Key: key, Interval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	done := make(chan struct{})
	go func() { defer close(done); sealer.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM ledger_queue").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries still unsealed after 30s", waiting)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// storeAt stores entries with the given timestamps and categories the way
// the API does (each queued for sealing in the same statement), and
// returns their ids.
func storeAt(t *testing.T, pool *pgxpool.Pool, stamps []time.Time, categories []string) []uuid.UUID {
	t.Helper()
	p := db.InsertQueuedLogsParams{}
	var ids []uuid.UUID
	for i, ts := range stamps {
		id := uuid.Must(uuid.NewV7())
		ids = append(ids, id)
		p.Ids = append(p.Ids, id)
		p.Timestamps = append(p.Timestamps, ts)
		p.Levels = append(p.Levels, "INFO")
		p.Categories = append(p.Categories, categories[i])
		p.Messages = append(p.Messages, fmt.Sprintf("entry %d", i))
		p.CorrelationIds = append(p.CorrelationIds, "r")
		p.UserIds = append(p.UserIds, "")
		p.Contexts = append(p.Contexts, json.RawMessage(`{}`))
		p.TraceIds = append(p.TraceIds, "")
		p.Actors = append(p.Actors, "a")
	}
	if _, err := db.New(pool).InsertQueuedLogs(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	return ids
}

// seqsOf returns the seqs of ids, ascending.
func seqsOf(t *testing.T, pool *pgxpool.Pool, ids []uuid.UUID) []int64 {
	t.Helper()
	rows, err := pool.Query(t.Context(), "SELECT seq FROM ledger_leaves WHERE log_id = ANY ($1) ORDER BY seq", ids)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(seqs) != len(ids) {
		t.Fatalf("seqs of %d entries: %v %v", len(ids), seqs, err)
	}
	return seqs
}

// retiredSeqs returns the seqs the stored retention records retire, each
// record's signature checked with key.
func retiredSeqs(t *testing.T, pool *pgxpool.Pool, key *ledger.Key) []int64 {
	t.Helper()
	records, err := ledger.NewReader(pool).Retirements(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, rec := range records {
		r, err := ledger.OpenRetirement([]byte(rec.Note), key.Verifier)
		if err != nil {
			t.Fatalf("record of %s: %v", rec.Partition, err)
		}
		if r.Partition != rec.Partition || r.Retired != rec.Retired || ledger.FormatSeqRanges(r.Seqs) != rec.SeqRanges {
			t.Errorf("the signed record %+v differs from its columns %+v", r, rec)
		}
		for _, sr := range r.Seqs {
			for s := sr.From; s <= sr.To; s++ {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestRetentionKeepsHeldEntries: retention drops the partitions older
// than it, and only those; a dry run changes nothing; entries an active
// hold matches stay readable by get, list and feed, and the other dropped
// entries are missing from the feed; a signed record names exactly the
// retired seqs; the tree keeps every leaf; after the hold is released the
// next run retires the held entries too.
func TestRetentionKeepsHeldEntries(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ctx := t.Context()
	key := testKey(t)
	now := time.Now().UTC()
	old1, old2 := now.Add(-40*24*time.Hour), now.Add(-39*24*time.Hour)
	oldIDs := storeAt(t, pool, []time.Time{old1, old1, old1, old2, old2}, []string{"legal", "other", "other", "other", "legal"})
	recent := storeAt(t, pool, []time.Time{now}, []string{"other"})[0]
	held, dropped := []uuid.UUID{oldIDs[0], oldIDs[4]}, []uuid.UUID{oldIDs[1], oldIDs[2], oldIDs[3]}
	sealAll(t, pool, key)
	holds := lifecycle.NewHolds(pool)
	legal := "legal"
	if err := holds.Create(ctx, lifecycle.Hold{Name: "matter-42", Reason: "litigation", Category: &legal}); err != nil {
		t.Fatal(err)
	}
	if err := holds.Create(ctx, lifecycle.Hold{Name: "matter-42", Reason: "again"}); !errors.Is(err, lifecycle.ErrHoldExists) {
		t.Fatalf("a second hold of the same name: %v", err)
	}
	m := lifecycle.New(pool, lifecycle.Options{Retention: 30 * 24 * time.Hour, Key: key})

	rep, err := m.Run(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var retired, kept int64
	for _, d := range rep.Drops {
		retired, kept = retired+d.Retired, kept+d.Held
	}
	// The old entries are still in the default partition (no partition
	// covered their days): the dry run would create their partitions,
	// moving them in, and drops only partitions that exist.
	wantCreated := []string{"system_logs_p" + old1.Format("20060102"), "system_logs_p" + old2.Format("20060102")}
	if got := names(rep.Created); len(rep.Drops) != 0 || rep.Moved != 5 || !slices.Equal(got[len(got)-2:], wantCreated) {
		t.Fatalf("dry run: created %v (moving %d), drops %+v; want %v created, moving 5", got, rep.Moved, rep.Drops, wantCreated)
	}
	if got := storeCount(t, pool); got != 6 {
		t.Fatalf("the dry run changed the table: %d entries", got)
	}
	// Create the partitions (moving the old entries in), then dry-run
	// again: now the drops show.
	if _, err := lifecycle.New(pool, lifecycle.Options{}).Run(ctx, false); err != nil {
		t.Fatal(err)
	}
	if rep, err = m.Run(ctx, true); err != nil {
		t.Fatal(err)
	}
	retired, kept = 0, 0
	for _, d := range rep.Drops {
		retired, kept = retired+d.Retired, kept+d.Held
	}
	if len(rep.Drops) != 2 || retired != 3 || kept != 2 {
		t.Fatalf("dry run: %d drops, %d retired, %d held; want 2, 3, 2: %+v", len(rep.Drops), retired, kept, rep.Drops)
	}
	if got := storeCount(t, pool); got != 6 {
		t.Fatalf("the dry run changed the table: %d entries", got)
	}

	if _, err := m.Run(ctx, false); err != nil {
		t.Fatal(err)
	}
	store := logstore.New(pool)
	for _, id := range held {
		if _, err := store.Get(ctx, id); err != nil {
			t.Errorf("held entry %s after the drop: %v", id, err)
		}
	}
	for _, id := range dropped {
		if _, err := store.Get(ctx, id); !errors.Is(err, logstore.ErrNotFound) {
			t.Errorf("dropped entry %s: %v, want not found", id, err)
		}
	}
	if _, err := store.Get(ctx, recent); err != nil {
		t.Errorf("recent entry: %v", err)
	}
	page, err := store.List(ctx, logstore.Filter{Category: &legal}, 10, "", 0)
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("list of held entries: %v, %d items", err, len(page.Items))
	}
	feed, err := store.Feed(ctx, logstore.Filter{}, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(feed.Items) != 3 || len(feed.Missing) != 3 {
		t.Fatalf("feed: %d entries and %d missing, want 3 (2 held, 1 recent) and 3", len(feed.Items), len(feed.Missing))
	}
	if got, want := retiredSeqs(t, pool, key), seqsOf(t, pool, dropped); !slices.Equal(got, want) {
		t.Fatalf("the records retire seqs %v, want %v", got, want)
	}
	if size, err := db.New(pool).TreeSize(ctx); err != nil || size != 6 {
		t.Fatalf("tree size %d (%v), want all 6 leaves kept", size, err)
	}
	// A second run changes nothing: the held partitions' holds still
	// keep everything in them.
	if rep, err = m.Run(ctx, false); err != nil || len(rep.Drops) != 0 {
		t.Fatalf("second run: %v %+v", err, rep.Drops)
	}

	if err := holds.Release(ctx, "matter-42"); err != nil {
		t.Fatal(err)
	}
	if err := holds.Release(ctx, "matter-42"); !errors.Is(err, lifecycle.ErrHoldNotFound) {
		t.Fatalf("releasing twice: %v", err)
	}
	if _, err := m.Run(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, id := range held {
		if _, err := store.Get(ctx, id); !errors.Is(err, logstore.ErrNotFound) {
			t.Errorf("released entry %s: %v, want retired", id, err)
		}
	}
	if got, want := retiredSeqs(t, pool, key), seqsOf(t, pool, oldIDs); !slices.Equal(got, want) {
		t.Fatalf("after the release the records retire seqs %v, want %v", got, want)
	}
	if got := storeCount(t, pool); got != 1 {
		t.Fatalf("%d entries left, want the recent one", got)
	}
}

func storeCount(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM system_logs").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// partitionToDrop returns a database holding n sealed entries in a
// partition 40 days old, which a 30-day retention drops, with the
// partitions already made, so that the next run only drops; and the key
// that sealed them.
func partitionToDrop(t *testing.T, n int) (*pgxpool.Pool, *ledger.Key) {
	t.Helper()
	pool := setup(t)
	key := testKey(t)
	old := time.Now().UTC().Add(-40 * 24 * time.Hour)
	stamps, categories := make([]time.Time, n), make([]string, n)
	for i := range n {
		stamps[i], categories[i] = old, fmt.Sprint("c", i)
	}
	storeAt(t, pool, stamps, categories)
	sealAll(t, pool, key)
	if _, err := lifecycle.New(pool, lifecycle.Options{}).Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	return pool, key
}

// writeNow stores one entry in today's partition, as a write does while a
// drop runs.
func writeNow(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, context, actor)
		VALUES ($1, now(), 'INFO', 'live', 'write', 'r', '{}', 'a')`, uuid.Must(uuid.NewV7()))
	return err
}

// TestDropWaitingForTheTableLetsWritesThrough: a drop must lock
// system_logs to detach a partition, and a transaction that has read the
// table (a seal pass, a listing) keeps it waiting. Meanwhile writes go on,
// each delayed by one short attempt at most, and the drop finishes once
// the reader is done.
func TestDropWaitingForTheTableLetsWritesThrough(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, key := partitionToDrop(t, 3)

	reader, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback(context.Background())
	if _, err := reader.Exec(ctx, "SELECT count(*) FROM system_logs"); err != nil {
		t.Fatal(err)
	}
	type result struct {
		rep lifecycle.Report
		err error
	}
	dropped := make(chan result, 1)
	go func() {
		rep, err := lifecycle.New(pool, lifecycle.Options{Retention: 30 * 24 * time.Hour, Key: key}).Run(ctx, false)
		dropped <- result{rep, err}
	}()

	// Writes while the reader holds the table for 2 s.
	const held = 2 * time.Second
	type writes struct {
		n     int
		worst time.Duration
		err   error
	}
	wrote := make(chan writes, 1)
	go func() {
		var w writes
		for end := time.Now().Add(held); time.Now().Before(end) && w.err == nil; w.n++ {
			start := time.Now()
			w.err = writeNow(ctx, pool)
			w.worst = max(w.worst, time.Since(start))
		}
		wrote <- w
	}()
	// The writes run for held while the reader holds the table; writes
	// stuck behind the drop would keep them from ending.
	var w writes
	select {
	case w = <-wrote:
	case <-time.After(held + 10*time.Second):
		_ = reader.Commit(ctx)
		t.Fatalf("writes still blocked %v after they began, behind the drop waiting for the table", held+10*time.Second)
	}
	select {
	case r := <-dropped:
		t.Fatalf("the drop finished while a reader held the table: %+v", r)
	default:
	}
	if err := reader.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-dropped:
	case <-time.After(30 * time.Second):
		t.Fatal("the drop did not finish within 30s of the reader committing")
	}
	if r.err != nil || len(r.rep.Drops) != 1 || r.rep.Drops[0].Retired != 3 {
		t.Fatalf("drop: %+v, %v; want one partition of 3 retired entries", r.rep.Drops, r.err)
	}
	if w.err != nil {
		t.Fatalf("write %d: %v", w.n, w.err)
	}
	if w.worst > time.Second {
		t.Errorf("the slowest of %d writes took %v while the drop waited for the table", w.n, w.worst)
	}
	t.Logf("%d writes while the drop waited %v for the table, the slowest %v", w.n, held, w.worst.Round(time.Millisecond))
}

// TestDropGetsInPastAHolderThatYieldsLate: something holds system_logs and
// lets go only for a lock request that has waited 300 ms (as a statement
// that always outlasts the drop's first waits does, or autovacuum for one
// that has waited deadlock_timeout). A drop whose attempts all waited 50 ms
// would never get in; its waits grow, and it does.
func TestDropGetsInPastAHolderThatYieldsLate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, key := partitionToDrop(t, 2)
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background())
	if _, err := holder.Exec(ctx, "LOCK TABLE system_logs IN ACCESS SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	yielded := make(chan time.Duration, 1)
	watchCtx, stopWatching := context.WithCancel(ctx)
	watched := make(chan struct{})
	defer func() { stopWatching(); <-watched }() // before the holder's rollback
	go func() {
		defer close(watched)
		// Let go once a request for the table has waited 300 ms.
		start := time.Now()
		for watchCtx.Err() == nil {
			var waited bool
			err := pool.QueryRow(watchCtx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'system_logs'::regclass
				AND NOT granted AND waitstart < now() - interval '300 ms')`).Scan(&waited)
			if err == nil && waited {
				yielded <- time.Since(start) // before letting go, which may end the drop at once
				_ = holder.Commit(watchCtx)
				return
			}
			if !duty.Wait(watchCtx, 20*time.Millisecond) {
				return
			}
		}
	}()
	start := time.Now()
	rep, err := lifecycle.New(pool, lifecycle.Options{Retention: 30 * 24 * time.Hour, Key: key}).Run(ctx, false)
	took := time.Since(start)
	if err != nil || len(rep.Drops) != 1 || rep.Drops[0].Retired != 2 {
		t.Fatalf("drop: %+v, %v after %v; want one partition of 2 retired entries", rep.Drops, err, took)
	}
	select {
	case after := <-yielded:
		t.Logf("the holder let go after %v; the drop got in after %v", after.Round(time.Millisecond), took.Round(time.Millisecond))
	default:
		t.Fatal("the drop finished while the holder held the table")
	}
}

// TestDropWaitsForASealPassOffTheTable: a seal pass that reads
// system_logs for a long time (a backlog) holds the pass lock. The drop
// waits for it on that lock, where no write queues behind it, not on
// system_logs, where every write would; it gets in once the pass is done.
func TestDropWaitsForASealPassOffTheTable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, key := partitionToDrop(t, 2)
	pass, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pass.Rollback(context.Background())
	if _, err := pass.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1)", ledger.PassLock); err != nil {
		t.Fatal(err)
	}
	if _, err := pass.Exec(ctx, "SELECT count(*) FROM system_logs"); err != nil {
		t.Fatal(err)
	}
	dropped := make(chan error, 1)
	go func() {
		rep, err := lifecycle.New(pool, lifecycle.Options{Retention: 30 * 24 * time.Hour, Key: key}).Run(ctx, false)
		if err == nil && (len(rep.Drops) != 1 || rep.Drops[0].Retired != 2) {
			err = fmt.Errorf("drops %+v, want one partition of 2 retired entries", rep.Drops)
		}
		dropped <- err
	}()

	// The drop comes to wait for the pass lock, and only for it.
	waits := func() (onPass, onTable bool) {
		err := pool.QueryRow(ctx, `SELECT
  EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
    AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1),
  EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'system_logs'::regclass AND NOT granted)`,
			ledger.PassLock).Scan(&onPass, &onTable)
		if err != nil {
			t.Fatal(err)
		}
		return onPass, onTable
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		onPass, onTable := waits()
		if onTable {
			t.Fatal("the drop waits for system_logs, with the writes behind it, while a seal pass reads it")
		}
		if onPass {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the drop never came to wait for the seal pass")
		}
		if !duty.Wait(ctx, 10*time.Millisecond) {
			t.Fatal(ctx.Err())
		}
	}
	// Writes go on meanwhile.
	if err := writeNow(ctx, pool); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-dropped:
		t.Fatalf("the drop finished while the pass read the table: %v", err)
	default:
	}
	if err := pass.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-dropped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the drop did not finish within 30s of the pass ending")
	}
}
