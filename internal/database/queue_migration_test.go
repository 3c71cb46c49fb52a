package database

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"

	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// TestQueueMigratesInCommitOrder: migration 00071 turns the entries still
// queued one row each into one row per write transaction, in commit order
// (a transaction that began first but committed last comes last), its
// entries in ("timestamp", id) order with their leaf hashes, or NULL where
// the writer queued none; and back down again.
func TestQueueMigratesInCommitOrder(t *testing.T) {
	ctx := t.Context()
	pool, p := migratedTo(t, 70)
	now := time.Now().UTC().Truncate(time.Microsecond)
	write := func(tx pgx.Tx, ts time.Time, leaf []byte) uuid.UUID {
		t.Helper()
		id := uuid.Must(uuid.NewV7())
		if _, err := tx.Exec(ctx, `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, actor)
			VALUES ($1, $2, 'INFO', 'c', 'm', 'c', 'test')`, id, ts); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO ledger_queue (log_id, log_timestamp, leaf_hash) VALUES ($1, $2, $3)`, id, ts, leaf); err != nil {
			t.Fatal(err)
		}
		return id
	}
	leaf := make([]byte, 32)
	first, err := pool.Begin(ctx) // begins first, commits last
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Rollback(ctx) }()
	later := write(first, now.Add(time.Second), nil)
	earlier := write(first, now, leaf)
	second, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alone := write(second, now.Add(2*time.Second), leaf)
	if err := second.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT log_ids, leaf_hashes FROM ledger_queue
		ORDER BY pg_xact_commit_timestamp(xmin) NULLS FIRST, age(xmin) DESC, id`)
	if err != nil {
		t.Fatal(err)
	}
	type queued struct {
		IDs    []uuid.UUID
		Leaves [][]byte
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[queued])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[0].IDs) != 1 || got[0].IDs[0] != alone || len(got[1].IDs) != 2 ||
		got[1].IDs[0] != earlier || got[1].IDs[1] != later {
		t.Fatalf("queue after the migration %v, want [%s] then [%s %s]", got, alone, earlier, later)
	}
	if got[1].Leaves[0] == nil || got[1].Leaves[1] != nil || got[0].Leaves[0] == nil {
		t.Errorf("leaf hashes %v / %v, want the queued ones and NULL where none was", got[0].Leaves, got[1].Leaves)
	}
	if _, err := p.DownTo(ctx, 70); err != nil {
		t.Fatal(err)
	}
	var n, hashed int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(leaf_hash) FROM ledger_queue WHERE log_id = ANY ($1)`,
		[]uuid.UUID{alone, earlier, later}).Scan(&n, &hashed); err != nil || n != 3 || hashed != 2 {
		t.Errorf("after migrating down: %d queued, %d with leaf hashes (%v), want 3 and 2", n, hashed, err)
	}
}

// migratedTo returns a pool on a new database migrated up to version, and
// the migration provider to go on with; both close with the test.
func migratedTo(t *testing.T, version int64) (*pgxpool.Pool, *goose.Provider) {
	t.Helper()
	pool, err := Open(t.Context(), pgtest.NewDatabase(t), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p, sqlDB, err := provider(pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqlDB.Close() })
	if _, err := p.UpTo(t.Context(), version); err != nil {
		t.Fatal(err)
	}
	return pool, p
}
