package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/internal/lifecycle"
)

// datasetVersion names the generator below; a cached preload made by
// another version is thrown away and loaded again.
const datasetVersion = 2

// minRows is the smallest table the list runs accept.
const minRows = 10_000

// The dataset spans 30 days ending at dataEnd, so runs are repeatable.
var (
	dataEnd   = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	dataStart = dataEnd.Add(-30 * 24 * time.Hour)
)

// weighted is a value and its share of rows, in percent.
type weighted struct {
	value   string
	percent int
}

// The dataset's make-up. The list runs read category "payments" (10% of
// rows), its service account "svc-payments" (30% of the category's rows
// with a user), min_level WARNING (30%) and ERROR (12%).
var (
	datasetLevels = []weighted{
		{"DEBUG", 20}, {"INFO", 50}, {"WARNING", 18}, {"ERROR", 10}, {"CRITICAL", 2},
	}
	datasetCategories = []weighted{
		{"auth", 20}, {"orders", 14}, {"payments", 10}, {"inventory", 9}, {"shipping", 8},
		{"search", 8}, {"notifications", 7}, {"admin", 5}, {"billing", 5}, {"reports", 5},
		{"security", 5}, {"general", 4},
	}
	datasetMessages = []string{
		"request handled", "user signed in", "token refreshed", "payment authorised",
		"order created", "cache miss, loaded from store", "retrying upstream call",
		"rate limit reached", "permission denied", "configuration reloaded",
	}
)

// pick returns the value whose percent band holds n in [0, 100).
func pick(ws []weighted, n int) string {
	for _, w := range ws {
		if n < w.percent {
			return w.value
		}
		n -= w.percent
	}
	return ws[len(ws)-1].value
}

// datasetRows streams n generated rows for COPY, oldest first. Every third
// row starts a new correlation id; 20% of rows have no user; of the rest,
// 30% come from the category's service account and the others from 5000
// users.
type datasetRows struct {
	n, i   int
	rng    *rand.Rand
	corr   string
	values []any
}

func newDatasetRows(n int) *datasetRows {
	return &datasetRows{n: n, rng: rand.New(rand.NewPCG(datasetVersion, uint64(n)))}
}

// Next implements pgx.CopyFromSource.
func (d *datasetRows) Next() bool {
	if d.i >= d.n {
		return false
	}
	r := d.rng
	step := dataEnd.Sub(dataStart) / time.Duration(d.n)
	ts := dataStart.Add(time.Duration(d.i)*step + time.Duration(r.Int64N(int64(step)))).Truncate(time.Microsecond)
	if d.i%3 == 0 {
		d.corr = fmt.Sprintf("req-%016x", r.Uint64())
	}
	category := pick(datasetCategories, r.IntN(100))
	var user *string
	switch u := r.IntN(100); {
	case u < 20:
	case u < 44: // 30% of the 80% with a user
		s := "svc-" + category
		user = &s
	default:
		s := "user-" + strconv.Itoa(1+r.IntN(5000))
		user = &s
	}
	meta := json.RawMessage(fmt.Sprintf(`{"ip":"10.%d.%d.%d","attempt":%d}`, r.IntN(256), r.IntN(256), r.IntN(256), 1+r.IntN(3)))
	d.values = []any{
		uuidV7At(ts, r), ts, pick(datasetLevels, r.IntN(100)), category,
		datasetMessages[r.IntN(len(datasetMessages))] + " #" + strconv.Itoa(d.i),
		d.corr, user, meta, "bench",
	}
	d.i++
	return true
}

// Values implements pgx.CopyFromSource.
func (d *datasetRows) Values() ([]any, error) { return d.values, nil }

// Err implements pgx.CopyFromSource.
func (d *datasetRows) Err() error { return nil }

// uuidV7At is a UUIDv7 for instant t with random bits from r.
func uuidV7At(t time.Time, r *rand.Rand) uuid.UUID {
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[0:8], uint64(t.UnixMilli())<<16|0x7000|r.Uint64()&0x0fff)
	binary.BigEndian.PutUint64(id[8:16], r.Uint64()&0x3fffffffffffffff|0x8000000000000000)
	return id
}

// ensureDataset makes sure system_logs holds exactly the dataset of rows
// rows, reusing the one cached by an earlier run when it matches. analyze
// forces a fresh VACUUM ANALYZE (after a migration, say). It reports
// whether it loaded the rows.
// holdsDataset reports whether the database's marker says it holds the
// dataset of rows rows, loaded by this version of the generator.
func holdsDataset(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, rows int) (bool, error) {
	var have, version int
	err := q.QueryRow(ctx, `SELECT rows, version FROM bench_dataset`).Scan(&have, &version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("dataset marker: %w", err)
	}
	return err == nil && have == rows && version == datasetVersion, nil
}

func ensureDataset(ctx context.Context, pool *pgxpool.Pool, rows int, analyze bool, progress func(string, ...any)) (bool, error) {
	if _, err := pool.Exec(ctx,
		`CREATE TABLE IF NOT EXISTS bench_dataset (rows bigint NOT NULL, version int NOT NULL)`); err != nil {
		return false, fmt.Errorf("dataset marker: %w", err)
	}
	cached, err := holdsDataset(ctx, pool, rows)
	if err != nil {
		return false, err
	}
	if cached {
		if analyze {
			progress("analyzing the cached dataset after a migration")
			if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) system_logs"); err != nil {
				return false, fmt.Errorf("vacuum analyze: %w", err)
			}
		}
		return false, nil
	}
	progress("loading %d rows with COPY (cached in the data dir for later runs)", rows)
	start := time.Now()
	if _, err := pool.Exec(ctx, "TRUNCATE system_logs, bench_dataset"); err != nil {
		return false, fmt.Errorf("truncate: %w", err)
	}
	// The dataset's days get their partitions first, as a server's
	// maintainer would have made them, so COPY fills them directly rather
	// than the default partition.
	days := lifecycle.New(pool, lifecycle.Options{Now: func() time.Time { return dataStart }, Ahead: int(dataEnd.Sub(dataStart) / lifecycle.DefaultInterval)})
	if err := retryBusy(ctx, func() error { _, err := days.Run(ctx, false); return err }); err != nil {
		return false, fmt.Errorf("partitions: %w", err)
	}
	n, err := pool.CopyFrom(ctx, pgx.Identifier{"system_logs"},
		[]string{"id", "timestamp", "level", "category", "message", "correlation_id", "user_id", "context", "actor"},
		newDatasetRows(rows))
	if err != nil {
		return false, fmt.Errorf("copy dataset: %w", err)
	}
	if n != int64(rows) {
		return false, fmt.Errorf("copy dataset: stored %d of %d rows", n, rows)
	}
	progress("loaded in %s; vacuum analyze", time.Since(start).Round(time.Second))
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) system_logs"); err != nil {
		return false, fmt.Errorf("vacuum analyze: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO bench_dataset (rows, version) VALUES ($1, $2)`, rows, datasetVersion); err != nil {
		return false, fmt.Errorf("dataset marker: %w", err)
	}
	return true, nil
}
