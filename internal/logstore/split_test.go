package logstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// TestRefusedRowCostsItsGroupFewStatements: a full group holding one row
// the database refuses is written in about 2·log₂ of its size statements
// (halving around the bad row), not one per row, and only that row fails.
func TestRefusedRowCostsItsGroupFewStatements(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := database.Open(ctx, pgtest.NewDatabase(t), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := database.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	g := &grouper{q: db.New(pool)}
	const bad = 100
	group := make([]*pendingWrite, maxGroup)
	for i := range group {
		msg := fmt.Sprintf("m%d", i)
		if i == bad {
			msg = "a\x00b"
		}
		r, err := row(Entry{Level: "INFO", Category: "split", Message: msg, CorrelationID: "c", Actor: "svc"}, now())
		if err != nil {
			t.Fatal(err)
		}
		group[i] = &pendingWrite{ctx: context.Background(), row: r, done: make(chan error, 1)}
	}
	before := pool.Stat().AcquireCount()
	g.commit(group)
	statements := pool.Stat().AcquireCount() - before
	for i, p := range group {
		err := <-p.done
		if (i == bad) != errors.Is(err, ErrInvalidText) || (i != bad && err != nil) {
			t.Errorf("row %d: %v", i, err)
		}
	}
	// 1 for the whole group, then 2 per halving down to the bad row.
	if limit := int64(1 + 2*8); statements > limit {
		t.Errorf("a group of %d with one bad row took %d statements, want at most %d", maxGroup, statements, limit)
	}
	t.Logf("a group of %d with one bad row took %d statements", maxGroup, statements)
}
