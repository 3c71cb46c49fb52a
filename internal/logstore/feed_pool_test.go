package logstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// smallPools returns a store over a main pool of mainConns connections
// and a read pool of readConns with the given statement timeout, both on
// pool's database.
func smallPools(t *testing.T, pool *pgxpool.Pool, mainConns, readConns int32, readTimeout time.Duration) *logstore.Store {
	t.Helper()
	open := func(conns int32, timeout time.Duration) *pgxpool.Pool {
		cfg := pool.Config()
		cfg.MaxConns, cfg.MinConns = conns, 0
		if timeout > 0 {
			cfg.ConnConfig.RuntimeParams["statement_timeout"] = timeout.String()
		}
		p, err := pgxpool.NewWithConfig(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	return logstore.New(open(mainConns, 0), logstore.WithReadPool(open(readConns, readTimeout)))
}

// lockLedger holds an exclusive lock on ledger_blocks until the test
// ends, so that every read of the ledger waits.
func lockLedger(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), "LOCK TABLE ledger_blocks IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
}

// TestLedgerReadsRunOutOfTimeOnTheReadPool: the feed, the tree size, seals
// and the unsealed listing run under the read pool's statement timeout, so
// a read that cannot finish is ErrReadTimeout, not an outage or a wait.
func TestLedgerReadsRunOutOfTimeOnTheReadPool(t *testing.T) {
	t.Parallel()
	_, pool := setup(t)
	store := smallPools(t, pool, 4, 2, 100*time.Millisecond)
	lockLedger(t, pool)
	reads := []struct {
		name string
		read func(ctx context.Context) error
	}{
		{"feed", func(ctx context.Context) error {
			_, err := store.Feed(ctx, logstore.Filter{}, 0, 10)
			return err
		}},
		{"tree size", func(ctx context.Context) error {
			_, err := store.TreeSize(ctx)
			return err
		}},
		{"seals", func(ctx context.Context) error {
			tx := int64(1)
			_, err := store.Seals(ctx, []db.SystemLog{{ID: uuid.New(), LedgerTx: &tx}})
			return err
		}},
		{"unsealed", func(ctx context.Context) error {
			_, err := store.Unsealed(ctx, 10)
			return err
		}},
	}
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := r.read(ctx)
			if !errors.Is(err, logstore.ErrReadTimeout) || errors.Is(err, database.ErrUnavailable) {
				t.Errorf("a %s read past the read timeout: %v, want ErrReadTimeout", r.name, err)
			}
		})
	}
}

// TestFeedReadsCannotTakeWritesConnections: more feed reads than the main
// pool has connections, all stuck, leave writes their connections.
func TestFeedReadsCannotTakeWritesConnections(t *testing.T) {
	t.Parallel()
	_, pool := setup(t)
	const mainConns = 3
	store := smallPools(t, pool, mainConns, 2, 500*time.Millisecond)
	lockLedger(t, pool)

	var wg sync.WaitGroup
	errs := make(chan error, 4*mainConns)
	for range 4 * mainConns {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err := store.Feed(ctx, logstore.Filter{}, 0, 100)
			errs <- err
		})
	}
	// Wait until feed reads are stuck on the lock, holding connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no feed read waited on the locked ledger within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := store.Insert(ctx, logstore.Entry{Level: "INFO", Category: "c", Message: "m", CorrelationID: "c", Actor: "svc"}); err != nil {
		t.Errorf("a write while feed reads hold the read pool: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, logstore.ErrReadTimeout) {
			t.Errorf("a stuck feed read: %v, want ErrReadTimeout", err)
		}
	}
}
