package logstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// benchRows is the size of the table BenchmarkList reads.
const benchRows = 300_000

// lister lists one page: the store, or (while comparing forms of the
// query) another way of sending it.
type lister struct {
	name string
	list func(ctx context.Context, store *logstore.Store, f logstore.Filter, limit int32, cursor string) error
}

// benchListers are the ways BenchmarkList lists; a comparison adds its own.
var benchListers = []lister{{"store", func(ctx context.Context, store *logstore.Store, f logstore.Filter, limit int32, cursor string) error {
	_, err := store.List(ctx, f, limit, cursor, 0)
	return err
}}}

var benchPool *pgxpool.Pool

// BenchmarkList measures the first page and a deep page (past nine tenths
// of the table) of each kind of list on benchRows rows, and reports each
// one's p50 and p99 (ns/op sums the listers). A deep page should cost what
// the first does:
//
//	go test -run '^$' -bench BenchmarkList -benchtime 400x ./internal/logstore/
func BenchmarkList(b *testing.B) {
	ctx := b.Context()
	pool, err := database.Open(ctx, pgtest.NewDatabase(b), 10*time.Second, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	benchPool = pool
	if _, err := database.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	loadPlanRows(b, pool, benchRows)
	store := logstore.New(pool)
	str := func(s string) *string { return &s }
	deep := logstore.EncodeCursor(planStart.Add(planSpan/10), uuid.Max)
	cases := []struct {
		name   string
		filter logstore.Filter
	}{
		{"no filter", logstore.Filter{}},
		{"category", logstore.Filter{Category: str(planCategory)}},
		{"min_level ERROR", logstore.Filter{MinLevel: "ERROR"}},
		{"levels WARNING+CRITICAL", logstore.Filter{Levels: []string{"WARNING", "CRITICAL"}}},
		{"levels INFO+WARNING+ERROR", logstore.Filter{Levels: []string{"INFO", "WARNING", "ERROR"}}},
		{"category+min_level WARNING", logstore.Filter{Category: str(planCategory), MinLevel: "WARNING"}},
	}
	for _, tc := range cases {
		for _, page := range []struct{ name, cursor string }{{"first", ""}, {"deep", deep}} {
			b.Run(tc.name+"/"+page.name, func(b *testing.B) {
				// The listers take turns, so each sees the same load.
				took := make([][]time.Duration, len(benchListers))
				for b.Loop() {
					for i, l := range benchListers {
						start := time.Now()
						if err := l.list(ctx, store, tc.filter, planPage, page.cursor); err != nil {
							b.Fatal(err)
						}
						took[i] = append(took[i], time.Since(start))
					}
				}
				for i, l := range benchListers {
					d := took[i]
					slices.Sort(d)
					b.ReportMetric(float64(d[len(d)/2].Microseconds()), l.name+"-p50-µs")
					b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), l.name+"-p99-µs")
				}
			})
		}
	}
}
