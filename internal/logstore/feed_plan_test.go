package logstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// TestFeedPlanLooksUpEachLeafInItsPartition runs feed pages through the
// store against planRows sealed entries in daily partitions and checks the
// plan PostgreSQL makes for them: the leaves come from the blocks of
// ledger_blocks' primary key, starting at the block of the page's
// position, and each leaf's entry is one primary-key lookup in the one
// partition its timestamp names. The plan PostgreSQL prefers for a plain join (a hash
// join over a sequential scan of every partition) costs a page the whole
// table, and so grows with it.
func TestFeedPlanLooksUpEachLeafInItsPartition(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, rec := planDatabase(t)
	parts := loadPartitions(t, pool)
	// Seal every row, in timestamp order, in blocks of 1000, as the
	// sequencer would have.
	if _, err := pool.Exec(ctx, `INSERT INTO ledger_blocks (first_seq, last_seq, first_index, tx, log_ids, log_timestamps, leaf_hashes, hashes, sealed_at)
SELECT min(seq), max(seq), 0, -((seq - 1) / 1000 + 1), array_agg(id ORDER BY seq), array_agg(ts ORDER BY seq),
       array_agg(zero ORDER BY seq), string_agg(zero, ''::bytea ORDER BY seq), now()
FROM (SELECT row_number() OVER (ORDER BY "timestamp", id) AS seq, id, "timestamp" AS ts, decode(repeat('00', 32), 'hex') AS zero
      FROM system_logs) r
GROUP BY (seq - 1) / 1000`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) ledger_blocks"); err != nil {
		t.Fatal(err)
	}
	store := logstore.New(pool)
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		filter logstore.Filter
		after  int64
		limit  int32
	}{
		{"first page", logstore.Filter{}, 0, 1000},
		{"deep page", logstore.Filter{}, planRows * 9 / 10, 1000},
		{"rare category", logstore.Filter{Category: str(planCategory)}, planRows / 2, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec.start()
			page, err := store.Feed(ctx, tc.filter, tc.after, tc.limit)
			queries := rec.stop()
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) == 0 || len(page.Missing) != 0 {
				t.Fatalf("%d items, %d missing; want items and none missing", len(page.Items), len(page.Missing))
			}
			var feed *recordedQuery
			for i := range queries {
				if strings.Contains(queries[i].SQL, "FROM ledger_blocks b") {
					feed = &queries[i]
				}
			}
			if feed == nil {
				t.Fatalf("no feed query among %d", len(queries))
			}
			// The generic plan the store asks for, and the custom plan
			// PostgreSQL would make otherwise: both must hold.
			checkFeedPlan(t, parts, explainGeneric(t, pool, *feed))
			checkFeedPlan(t, parts, explain(t, pool, *feed))
		})
	}
}

// checkFeedPlan fails t unless plan reads the blocks by ledger_blocks'
// primary key from the page's position and looks up each leaf's entry by
// primary key in one partition: no sequential scan of a partition bigger
// than smallBranch, no hash join, and no more partition lookups than leaves.
// (It sorts the leaves of its window: as many as the page needs.)
func checkFeedPlan(t *testing.T, parts partitions, plan *planNode) {
	t.Helper()
	var leaves, lookups float64
	var blocks bool
	plan.walk(func(n *planNode) {
		switch n.NodeType {
		case "Hash Join", "Merge Join", "Hash":
			t.Errorf("%s in the feed's plan:\n%s", n.NodeType, plan)
		case "Seq Scan", "Bitmap Heap Scan":
			if n.RelationName == "ledger_blocks" || parts.rows[n.RelationName] > smallBranch {
				t.Errorf("reads %s with a %s:\n%s", n.RelationName, n.NodeType, plan)
			}
		case "Function Scan":
			leaves += n.ActualRows * n.ActualLoops
		case "Index Scan", "Index Only Scan":
			if n.RelationName == "ledger_blocks" {
				if strings.Contains(n.IndexCond, "first_seq >=") {
					blocks = true
				}
				return
			}
			if strings.HasPrefix(n.RelationName, "system_logs") {
				lookups += n.ActualLoops
			}
		}
	})
	if !blocks {
		t.Fatalf("no index scan of ledger_blocks from the page's block:\n%s", plan)
	}
	if lookups > leaves {
		t.Errorf("%.0f partition lookups for %.0f leaves; want one each at most:\n%s", lookups, leaves, plan)
	}
}

// explainGeneric runs q under EXPLAIN ANALYZE as a prepared statement with
// its generic plan (plan_cache_mode = force_generic_plan, as the store's
// feed reads run it) and returns the plan with actual row counts.
func explainGeneric(t *testing.T, pool *pgxpool.Pool, q recordedQuery) *planNode {
	t.Helper()
	ctx := t.Context()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// EXECUTE takes no parameters of its own: the arguments go in as
	// literals, which the prepared statement's parameters type.
	params := make([]string, len(q.Args))
	for i, a := range q.Args {
		params[i] = literal(t, a)
	}
	for _, stmt := range []string{"SET plan_cache_mode = force_generic_plan", "PREPARE generic_plan AS " + q.SQL} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "DEALLOCATE generic_plan; RESET plan_cache_mode")
	}()
	var out []struct{ Plan *planNode }
	sql := "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE generic_plan(" + strings.Join(params, ", ") + ")"
	if err := conn.QueryRow(ctx, sql).Scan(&out); err != nil {
		t.Fatalf("explain generic: %v", err)
	}
	if len(out) != 1 || out[0].Plan == nil {
		t.Fatalf("explain generic: unexpected output %v", out)
	}
	return out[0].Plan
}

// literal renders one of the feed query's arguments as an SQL literal.
func literal(t *testing.T, a any) string {
	t.Helper()
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	switch v := a.(type) {
	case nil:
		return "NULL"
	case int64, int32:
		return fmt.Sprint(v)
	case *string:
		if v == nil {
			return "NULL"
		}
		return quote(*v)
	case []string:
		if v == nil {
			return "NULL"
		}
		items := make([]string, len(v))
		for i, s := range v {
			items[i] = quote(s)
		}
		return "ARRAY[" + strings.Join(items, ", ") + "]::text[]"
	case *time.Time:
		if v == nil {
			return "NULL"
		}
		return quote(v.Format(time.RFC3339Nano))
	}
	t.Fatalf("no literal for %T", a)
	return ""
}
