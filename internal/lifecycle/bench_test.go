package lifecycle_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/internal/lifecycle"
)

// benchDayRows is how many rows each day of BenchmarkDropVersusDelete holds.
const benchDayRows = 500_000

// copyDay copies n rows spread over the day from start into system_logs.
func copyDay(b *testing.B, pool *pgxpool.Pool, start time.Time, n int) {
	b.Helper()
	step := 24 * time.Hour / time.Duration(n)
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		return []any{uuid.Must(uuid.NewV7()), start.Add(time.Duration(i) * step), "INFO", "bench", "message", "r", json.RawMessage(`{}`), "bench"}, nil
	})
	if _, err := pool.CopyFrom(b.Context(), pgx.Identifier{"system_logs"},
		[]string{"id", "timestamp", "level", "category", "message", "correlation_id", "context", "actor"}, src); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDropVersusDelete measures what retiring one day of
// benchDayRows rows costs: retention's drop of its partition (detach,
// drop, signed record) against a DELETE of the same rows from another
// day's partition, and reports both (ms per day):
//
//	go test -run '^$' -bench BenchmarkDropVersusDelete -benchtime 1x ./internal/lifecycle/
func BenchmarkDropVersusDelete(b *testing.B) {
	pool := setup(b)
	ctx := b.Context()
	key := testKey(b)
	var drop, del time.Duration
	for i := range b.N {
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 10 * 24 * time.Hour)
		dropDay, deleteDay := now.Add(-3*24*time.Hour), now.Add(-2*24*time.Hour)
		b.StopTimer()
		copyDay(b, pool, dropDay, benchDayRows)
		copyDay(b, pool, deleteDay, benchDayRows)
		if _, err := lifecycle.New(pool, lifecycle.Options{Now: func() time.Time { return now }}).Run(ctx, false); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) system_logs"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		// A retention of 36 hours drops the older day only.
		m := lifecycle.New(pool, lifecycle.Options{Retention: 36 * time.Hour, Key: key, Now: func() time.Time { return now }})
		rep, err := m.Run(ctx, false)
		if err != nil || len(rep.Drops) == 0 {
			b.Fatalf("drop: %v %+v", err, rep.Drops)
		}
		drop += time.Since(start)
		start = time.Now()
		tag, err := pool.Exec(ctx, `DELETE FROM system_logs WHERE "timestamp" >= $1 AND "timestamp" < $2`, deleteDay, deleteDay.Add(24*time.Hour))
		if err != nil || tag.RowsAffected() != benchDayRows {
			b.Fatalf("delete: %v %d", err, tag.RowsAffected())
		}
		del += time.Since(start)
	}
	b.ReportMetric(float64(drop.Milliseconds())/float64(b.N), "drop-ms/day")
	b.ReportMetric(float64(del.Milliseconds())/float64(b.N), "delete-ms/day")
}
