package logstore_test

import (
	"testing"

	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// TestNoMatchFilterReadsNothing: a category whose entries are all below
// min_level is answered from the (category, level) index without reading
// the category's entries (or the level's) one by one to refuse them.
func TestNoMatchFilterReadsNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, rec := planDatabase(t)
	// A quiet category: only DEBUG entries, spread over the same days.
	if _, err := pool.Exec(ctx, `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, context, actor)
		SELECT gen_random_uuid(), $1::timestamptz + i * interval '4 s', 'DEBUG', 'quiet', 'm', 'c', '{}', 'planner'
		FROM generate_series(1, 20000) AS i`, planStart); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE system_logs"); err != nil {
		t.Fatal(err)
	}
	store := logstore.New(pool)
	quiet := "quiet"
	plan, cursor := listAndExplain(t, store, pool, rec, logstore.Filter{Category: &quiet, MinLevel: "INFO"}, "")
	if cursor != "" {
		t.Errorf("a filter that matches nothing has a next page")
	}
	var filtered float64
	plan.walk(func(n *planNode) { filtered += n.RowsFiltered })
	if filtered > 0 {
		t.Errorf("the list read and refused %.0f entries to find none:\n%s", filtered, plan)
	}
}
