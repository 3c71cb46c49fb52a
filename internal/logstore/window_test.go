package logstore_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// TestListAcrossTimeWindows: the store reads a page a window of time at a
// time, newest first (a day, then four, sixteen, …, then the rest). Paging
// through entries spread over a year, some stamped ahead of the clock, some
// sharing a timestamp, with filters dense and sparse and time bounds, lists
// exactly what one query over the whole table lists, in the same order, and
// counts the same total.
func TestListAcrossTimeWindows(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, pool := setup(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	// 600 entries 14.6 hours apart over a year back from an hour ahead of
	// now; every 7th is "sparse"; every 50th has a twin at the same
	// timestamp; levels cycle.
	if _, err := pool.Exec(ctx, `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, context, actor)
		SELECT gen_random_uuid(), $1::timestamptz - (i - CASE WHEN i % 50 = 1 THEN 1 ELSE 0 END) * interval '52560 s',
		       (ARRAY['DEBUG','INFO','WARNING','ERROR','CRITICAL'])[1 + i % 5],
		       CASE WHEN i % 7 = 0 THEN 'sparse' ELSE 'dense' END, 'm', 'c', '{}', 'windows'
		FROM generate_series(0, 599) AS i`, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	str := func(s string) *string { return &s }
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	day := 24 * time.Hour
	filters := []struct {
		name  string
		f     logstore.Filter
		where string
		args  []any
	}{
		{"everything", logstore.Filter{}, "true", nil},
		{"sparse category", logstore.Filter{Category: str("sparse")}, "category = 'sparse'", nil},
		{"sparse, min_level ERROR", logstore.Filter{Category: str("sparse"), MinLevel: "ERROR"}, "category = 'sparse' AND level IN ('ERROR','CRITICAL')", nil},
		{"no match", logstore.Filter{Category: str("none")}, "category = 'none'", nil},
		{"since and until", logstore.Filter{Since: at(-200 * day), Until: at(-3 * day)}, `"timestamp" >= $1 AND "timestamp" < $2`, []any{now.Add(-200 * day), now.Add(-3 * day)}},
		{"until only", logstore.Filter{Category: str("sparse"), Until: at(-100 * day)}, `category = 'sparse' AND "timestamp" < $1`, []any{now.Add(-100 * day)}},
	}
	for _, tc := range filters {
		for _, limit := range []int32{1, 7, 100} {
			t.Run(fmt.Sprintf("%s, pages of %d", tc.name, limit), func(t *testing.T) {
				rows, err := pool.Query(ctx, `SELECT id FROM system_logs WHERE `+tc.where+` ORDER BY "timestamp" DESC, id DESC`, tc.args...)
				if err != nil {
					t.Fatal(err)
				}
				var want []uuid.UUID
				for rows.Next() {
					var id uuid.UUID
					if err := rows.Scan(&id); err != nil {
						t.Fatal(err)
					}
					want = append(want, id)
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				var got []uuid.UUID
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > len(want)+1 {
						t.Fatalf("more pages than entries: %d", pages)
					}
					page, err := store.List(ctx, tc.f, limit, cursor, 0)
					if err != nil {
						t.Fatal(err)
					}
					if page.NextCursor != "" && len(page.Items) != int(limit) {
						t.Fatalf("a page of %d entries before the last, want %d", len(page.Items), limit)
					}
					for _, r := range page.Items {
						got = append(got, r.ID)
					}
					if page.NextCursor == "" {
						break
					}
					cursor = page.NextCursor
				}
				if !slices.Equal(got, want) {
					t.Errorf("listed %d entries, one query lists %d; first difference at %d", len(got), len(want), firstDiff(got, want))
				}
				// The total, counted a window at a time too: exact when
				// under the limit, the limit and not exact when over.
				for _, upTo := range []int64{int64(limit), 1000} {
					page, err := store.List(ctx, tc.f, limit, "", upTo)
					if err != nil {
						t.Fatal(err)
					}
					wantTotal, wantExact := min(int64(len(want)), upTo), int64(len(want)) <= upTo
					if page.Total == nil || *page.Total != wantTotal || page.TotalExact != wantExact {
						t.Errorf("total up to %d: %v (exact %v), want %d (exact %v)", upTo, page.Total, page.TotalExact, wantTotal, wantExact)
					}
				}
			})
		}
	}
}

func firstDiff(a, b []uuid.UUID) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestDeepPagePlansItsWindowOnly: a page deep in the trail is found by a
// query over the day before its cursor, so PostgreSQL plans (and opens) the
// partitions of that day, not every partition of the table.
func TestDeepPagePlansItsWindowOnly(t *testing.T) {
	t.Parallel()
	pool, rec := planDatabase(t)
	store := logstore.New(pool)
	parts := loadPartitions(t, pool)
	cursorAt := planStart.Add(planSpan / 2)
	category := planCategory
	rec.start()
	page, err := store.List(t.Context(), logstore.Filter{Category: &category}, 50, logstore.EncodeCursor(cursorAt, uuid.Max), 0)
	queries := rec.stop()
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 50 {
		t.Fatalf("%d entries on the page, want 50", len(page.Items))
	}
	if len(queries) != 1 {
		t.Fatalf("%d queries for a page the day before the cursor holds, want 1", len(queries))
	}
	plan := explain(t, pool, queries[0])
	lo := cursorAt.Add(-24 * time.Hour)
	for _, rel := range plan.relations() {
		b, ok := parts.bounds[rel]
		if !ok || !b[0].Before(cursorAt.Add(time.Microsecond)) || !b[1].After(lo) {
			t.Errorf("the page's query reads %s, outside [%s, %s]:\n%s", rel, lo.Format(time.RFC3339), cursorAt.Format(time.RFC3339), plan)
		}
	}
	if len(parts.bounds) < 5 {
		t.Fatalf("the table has %d partitions; the test needs the five days of its rows", len(parts.bounds))
	}
}
