package logstore_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// TestConcurrentInsertsAreCommittedTogether: many writes at once are all
// stored as Insert returned them, in fewer statements than writes, and a
// row the database refuses fails alone, without its group.
func TestConcurrentInsertsAreCommittedTogether(t *testing.T) {
	t.Parallel()
	_, pool := setup(t)
	var groups, grouped atomic.Int64
	store := logstore.New(pool, logstore.WithGroupObserver(func(n int) { groups.Add(1); grouped.Add(int64(n)) }))
	const n = 300
	user, trace := "u-1", "0123456789abcdef0123456789abcdef"
	entries := make([]logstore.Entry, n)
	for i := range entries {
		entries[i] = logstore.Entry{Level: "INFO", Category: "group", Message: fmt.Sprintf("m%d", i), CorrelationID: "c", Actor: "svc"}
		switch i % 3 {
		case 0:
			entries[i].UserID, entries[i].TraceID = &user, &trace
		case 1:
			entries[i].Context = json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
		}
	}

	// All valid: stored as returned, in fewer statements than writes.
	errs, statements := insertAll(t, store, pool, entries)
	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if statements >= n {
		t.Errorf("%d writes took %d statements: none were grouped", n, statements)
	}
	t.Logf("%d writes in %d statements", n, statements)
	if groups.Load() != statements || grouped.Load() != n {
		t.Errorf("the observer saw %d groups of %d writes in all, want %d of %d", groups.Load(), grouped.Load(), statements, n)
	}

	// One row holds a NUL, which PostgreSQL cannot store: it fails alone.
	const bad = 137
	entries[bad].Message = "a\x00b"
	errs, _ = insertAll(t, store, pool, entries)
	for i, err := range errs {
		if i == bad {
			if !errors.Is(err, logstore.ErrInvalidText) {
				t.Errorf("the row with a NUL: %v, want ErrInvalidText", err)
			}
		} else if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if got := count(t, pool); got != 2*n-1 {
		t.Errorf("%d rows stored, want %d", got, 2*n-1)
	}
}

// insertAll inserts entries at once, then checks each against what Get
// returns. It returns each write's error and how many statements the
// writes took (the pool's acquisitions while writing).
func insertAll(t *testing.T, store *logstore.Store, pool *pgxpool.Pool, entries []logstore.Entry) ([]error, int64) {
	t.Helper()
	before := pool.Stat().AcquireCount()
	start := make(chan struct{})
	errs := make([]error, len(entries))
	returned := make([]db.SystemLog, len(entries))
	var wg sync.WaitGroup
	for i := range entries {
		wg.Go(func() {
			<-start
			returned[i], errs[i] = store.Insert(t.Context(), entries[i])
		})
	}
	close(start)
	wg.Wait()
	statements := pool.Stat().AcquireCount() - before
	for i, e := range entries {
		if errs[i] != nil {
			continue
		}
		r := returned[i]
		got, err := store.Get(t.Context(), r.ID)
		switch {
		case err != nil:
			errs[i] = fmt.Errorf("get %s: %w", r.ID, err)
		case got.Message != e.Message || !got.Timestamp.Equal(r.Timestamp) || got.Actor != e.Actor ||
			(got.UserID != nil) != (e.UserID != nil) || (got.TraceID != nil) != (e.TraceID != nil) ||
			(e.Context == nil) != (string(got.Context) == "{}"):
			errs[i] = fmt.Errorf("stored %+v for %+v", got, e)
		}
	}
	return errs, statements
}
