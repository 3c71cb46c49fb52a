package logstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/lifecycle"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// planRows is the size of the table the plan test reads: big enough that a
// sequential scan or a sort of every match costs the planner far more than
// an ordered index scan.
const planRows = 100_000

// The values the plan test filters by: each matches 0.5–2.5% of the rows,
// so the index on that column is the plan a good planner picks.
const (
	planCategory    = "rare-category"    // 1%
	planUser        = "rare-user"        // 0.5%
	planCorrelation = "rare-correlation" // 0.5%
)

// TestListPlansUseMatchingIndex runs every kind of list query through the
// store against a table of planRows rows, captures the SQL and arguments it
// sends, and checks the plan PostgreSQL makes for them: rows come in keyset
// order straight from an index that matches a filter (no sort, no bitmap,
// no sequential scan), and a page after a cursor starts at the cursor
// inside the index, so a deep page (the second, and one far back) costs what
// the first does.
func TestListPlansUseMatchingIndex(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, rec := planDatabase(t)
	parts := loadPartitions(t, pool)
	store := logstore.New(pool)

	str := func(s string) *string { return &s }
	// A page past nine tenths of the table: where a plan that walks the
	// wrong index in keyset order, discarding what the filters refuse,
	// costs the most.
	farBack := logstore.EncodeCursor(planStart.Add(planSpan/10), uuid.Max)
	since := planStart.Add(2 * 24 * time.Hour)
	until := planStart.Add(3 * 24 * time.Hour)
	const (
		ts       = "system_logs_timestamp_idx"
		level    = "system_logs_level_idx"
		category = "system_logs_category_idx"
		catLevel = "system_logs_category_level_idx"
		corr     = "system_logs_correlation_id_idx"
		user     = "system_logs_user_id_idx"
	)
	tests := []struct {
		name    string
		filter  logstore.Filter
		indexes []string // the indexes a scan may use
	}{
		{"no filter", logstore.Filter{}, []string{ts}},
		{"category", logstore.Filter{Category: str(planCategory)}, []string{category}},
		{"correlation_id", logstore.Filter{CorrelationID: str(planCorrelation)}, []string{corr}},
		{"user_id", logstore.Filter{UserID: str(planUser)}, []string{user}},
		{"time range", logstore.Filter{Since: &since, Until: &until}, []string{ts}},
		{"min_level", logstore.Filter{MinLevel: "ERROR"}, []string{level}},
		{"levels", logstore.Filter{Levels: []string{"WARNING", "CRITICAL"}}, []string{level}},
		{"category+min_level", logstore.Filter{Category: str(planCategory), MinLevel: "WARNING"}, []string{category, level, catLevel}},
		{"category+user_id", logstore.Filter{Category: str(planCategory), UserID: str(planUser)}, []string{category, user}},
		{"category+time range", logstore.Filter{Category: str(planCategory), Since: &since, Until: &until}, []string{category}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, cursor := listAndExplain(t, store, pool, rec, tc.filter, "")
			checkListPlan(t, parts, first, tc.indexes, false)
			checkPruned(t, parts, first, tc.filter, "")
			if cursor == "" {
				t.Fatal("the filter matches a single page; the data is too small")
			}
			second, _ := listAndExplain(t, store, pool, rec, tc.filter, cursor)
			checkListPlan(t, parts, second, tc.indexes, true)
			checkPruned(t, parts, second, tc.filter, cursor)
			deep, _ := listAndExplain(t, store, pool, rec, tc.filter, farBack)
			checkListPlan(t, parts, deep, tc.indexes, true)
			checkPruned(t, parts, deep, tc.filter, farBack)
			if tc.filter.Since != nil {
				// The day the range covers, and no other: not even the
				// default partition, which the bounds prove cannot match.
				for _, plan := range []*planNode{first, second} {
					if got := plan.relations(); len(got) != 1 || got[0] != "system_logs_p20250103" {
						t.Errorf("the range scans %v, want only system_logs_p20250103:\n%s", got, plan)
					}
				}
			}
		})
	}

	for _, countUpTo := range []int64{1_000, logstore.MaxCount} {
		t.Run(fmt.Sprintf("include_total up to %d", countUpTo), func(t *testing.T) {
			rec.start()
			if _, err := store.List(ctx, logstore.Filter{Category: str(planCategory)}, 50, "", countUpTo); err != nil {
				t.Fatal(err)
			}
			queries := rec.stop()
			if len(queries) < 2 {
				t.Fatalf("want list queries and a count query, got %d", len(queries))
			}
			count := explain(t, pool, queries[len(queries)-1])
			count.walk(func(n *planNode) {
				if n.NodeType == "Seq Scan" && parts.rows[n.RelationName] > smallBranch {
					t.Errorf("the count reads the whole table:\n%s", count)
				}
			})
		})
	}
}

// listAndExplain lists one page through the store and returns the plan of
// the last list query it sent that returned rows (else of the last one),
// and the page's next cursor. The store reads a window of time at a time,
// newest first, so a page may take a few queries; an older window's query
// that found nothing is the one that ended the page, not its plan.
func listAndExplain(t *testing.T, store *logstore.Store, pool *pgxpool.Pool, rec *queryRecorder, f logstore.Filter, cursor string) (*planNode, string) {
	t.Helper()
	rec.start()
	page, err := store.List(t.Context(), f, planPage, cursor, 0)
	queries := rec.stop()
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) == 0 {
		t.Fatal("no query")
	}
	var plan *planNode
	for i := len(queries) - 1; i >= 0 && (plan == nil || plan.ActualRows == 0); i-- {
		plan = explain(t, pool, queries[i])
	}
	return plan, page.NextCursor
}

// smallBranch is the most rows a plan may sort: below it, reading the few
// matches with a bitmap and sorting them costs less than walking an index,
// and the planner may rightly choose that for a branch (one level of a
// level filter, say) that it expects to be small. It is checked against the
// rows the branch really held, so a misestimate (which the multivariate
// statistics of migration 00013 prevent) fails the test.
const smallBranch = 500

// checkListPlan fails t unless the rows of plan come in keyset order from
// index scans on indexes (a Sort may only sit on a branch the planner
// proved empty, or on a bitmap scan of at most smallBranch rows on those
// indexes) and, after a cursor, every index scan starts at the cursor's
// keyset position inside the index.
func checkListPlan(t *testing.T, parts partitions, plan *planNode, indexes []string, afterCursor bool) {
	t.Helper()
	scans := 0
	var check func(n *planNode)
	check = func(n *planNode) {
		switch n.NodeType {
		case "Limit", "Merge Append", "Append", "Subquery Scan":
		case "Result":
			if n.OneTimeFilter != "false" {
				t.Errorf("Result node that is not a pruned branch:\n%s", plan)
			}
			return // what it gates never runs
		case "Sort":
			if n.prunedOnly() {
				return
			}
			// A sort of a small branch (a bitmap scan, or the few
			// partitions left after pruning by time) is allowed when
			// what it sorts is small and read from the right indexes.
			if len(n.Plans) != 1 || n.Plans[0].ActualRows > smallBranch {
				t.Errorf("sorts rows instead of reading them in order:\n%s", plan)
				return
			}
			n.walk(func(b *planNode) {
				switch b.NodeType {
				case "Sort", "Append", "Bitmap Heap Scan", "BitmapAnd", "BitmapOr", "Result":
				case "Bitmap Index Scan", "Index Scan", "Index Only Scan":
					scans++
					if !slices.Contains(indexes, parts.parentIndex[b.IndexName]) {
						t.Errorf("scans %s, want one of %v:\n%s", b.IndexName, indexes, plan)
					}
				case "Seq Scan":
					if parts.rows[b.RelationName] > smallBranch {
						t.Errorf("reads partition %s sequentially:\n%s", b.RelationName, plan)
					}
				default:
					t.Errorf("unexpected %s node under a sort:\n%s", b.NodeType, plan)
				}
			})
			return
		case "Seq Scan":
			// A partition with a handful of rows costs nothing to scan,
			// and the planner knows it; a bigger one must be read by an
			// index.
			if parts.rows[n.RelationName] > smallBranch {
				t.Errorf("reads partition %s sequentially:\n%s", n.RelationName, plan)
			}
			return
		case "Index Scan", "Index Only Scan":
			scans++
			if !slices.Contains(indexes, parts.parentIndex[n.IndexName]) {
				t.Errorf("scans %s, want one of %v:\n%s", n.IndexName, indexes, plan)
			}
			if afterCursor && !strings.Contains(n.IndexCond, "ROW(\"timestamp\", id) <") {
				t.Errorf("%s does not start at the cursor (Index Cond %q):\n%s", n.IndexName, n.IndexCond, plan)
			}
		default:
			t.Errorf("unexpected %s node:\n%s", n.NodeType, plan)
		}
		for _, c := range n.Plans {
			check(c)
		}
	}
	check(plan)
	if scans == 0 && !plan.prunedOnly() { // pruning may prove a page empty
		t.Errorf("no index scan:\n%s", plan)
	}
}

// partitions describes system_logs' partitions for the plan checks.
type partitions struct {
	// parentIndex maps each partition's index to the index of
	// system_logs it implements (and each of those to itself).
	parentIndex map[string]string
	// rows counts each partition's rows.
	rows map[string]int64
	// bounds holds each partition's range; the default has none.
	bounds map[string][2]time.Time
}

// loadPartitions reads the partitions, their indexes and their rows.
func loadPartitions(t *testing.T, pool *pgxpool.Pool) partitions {
	t.Helper()
	ctx := t.Context()
	p := partitions{parentIndex: map[string]string{}, rows: map[string]int64{}, bounds: map[string][2]time.Time{}}
	rows, err := pool.Query(ctx, `SELECT c.relname::text, p.relname::text FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
WHERE c.relkind = 'i'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			t.Fatal(err)
		}
		p.parentIndex[child], p.parentIndex[parent] = parent, parent
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	rows, err = pool.Query(ctx, `SELECT tableoid::regclass::text, count(*) FROM system_logs GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		p.rows[name] = n
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	list, err := lifecycle.List(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range list {
		if !part.Default {
			p.bounds[part.Name] = [2]time.Time{part.From, part.To}
		}
	}
	if p.rows["system_logs_default"] != 0 || len(p.rows) < 5 {
		t.Fatalf("want the rows in daily partitions and none in the default, got %v", p.rows)
	}
	return p
}

// checkPruned fails t when plan reads a partition that cannot hold a row
// of the page: one outside the filter's time range, or newer than the
// cursor.
func checkPruned(t *testing.T, parts partitions, plan *planNode, f logstore.Filter, cursor string) {
	t.Helper()
	lo, hi := time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if f.Since != nil {
		lo = *f.Since
	}
	if f.Until != nil {
		hi = *f.Until
	}
	if cursor != "" {
		ts, _, err := logstore.DecodeCursor(cursor)
		if err != nil {
			t.Fatal(err)
		}
		if c := ts.Add(time.Microsecond); c.Before(hi) { // the cursor's own timestamp may still have rows
			hi = c
		}
	}
	for _, rel := range plan.relations() {
		b, ok := parts.bounds[rel]
		if ok && (!b[0].Before(hi) || !b[1].After(lo)) {
			t.Errorf("reads partition %s [%s, %s), which holds no row of [%s, %s):\n%s",
				rel, b[0].Format(time.RFC3339), b[1].Format(time.RFC3339), lo.Format(time.RFC3339), hi.Format(time.RFC3339), plan)
		}
	}
}

// relations returns the tables plan reads, in plan order.
func (n *planNode) relations() []string {
	var out []string
	n.walk(func(c *planNode) {
		if c.RelationName != "" && !slices.Contains(out, c.RelationName) {
			out = append(out, c.RelationName)
		}
	})
	return out
}

// planPage is the page size the plan test lists.
const planPage = 50

// planStart is when the plan test's rows begin; they span planSpan.
var planStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const planSpan = 5 * 24 * time.Hour

// loadPlanRows copies n rows spread over five days from planStart, oldest
// first as the service writes them, and analyzes the table.
func loadPlanRows(t testing.TB, pool *pgxpool.Pool, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	step := planSpan / time.Duration(n)
	type share struct {
		level   string
		permill int
	}
	common := []share{{"DEBUG", 300}, {"INFO", 555}, {"WARNING", 120}, {"ERROR", 20}, {"CRITICAL", 5}}
	severe := []share{{"DEBUG", 100}, {"INFO", 400}, {"WARNING", 300}, {"ERROR", 150}, {"CRITICAL", 50}}
	pick := func(shares []share) string {
		n := r.IntN(1000)
		for _, s := range shares {
			if n < s.permill {
				return s.level
			}
			n -= s.permill
		}
		return shares[len(shares)-1].level
	}
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		category, level := fmt.Sprintf("category-%d", r.IntN(40)), pick(common)
		var user *string
		if r.IntN(100) < 3 {
			category, level = planCategory, pick(severe)
		}
		switch u := r.IntN(3); {
		case category == planCategory && u == 0:
			user = &[]string{planUser}[0]
		case u < 2:
			user = &[]string{fmt.Sprintf("user-%d", r.IntN(2000))}[0]
		}
		corr := fmt.Sprintf("req-%d", i/3)
		if r.IntN(200) == 0 {
			corr = planCorrelation
		}
		ts := planStart.Add(time.Duration(i) * step)
		return []any{uuid.Must(uuid.NewV7()), ts, level, category, "message", corr, user, json.RawMessage(`{}`), "planner"}, nil
	})
	_, err := pool.CopyFrom(t.Context(), pgx.Identifier{"system_logs"},
		[]string{"id", "timestamp", "level", "category", "message", "correlation_id", "user_id", "context", "actor"}, src)
	if err != nil {
		t.Fatal(err)
	}
	// The rows went to the default partition (none covered their days);
	// the maintainer creates their daily partitions and moves them in, as
	// it does on a server.
	m := lifecycle.New(pool, lifecycle.Options{Now: func() time.Time { return planStart.Add(planSpan) }})
	if _, err := m.Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), "VACUUM (ANALYZE) system_logs"); err != nil {
		t.Fatal(err)
	}
}

// recordedQuery is one query a pool sent.
type recordedQuery struct {
	SQL  string
	Args []any
}

// queryRecorder is a pgx.QueryTracer that records the queries sent between
// start and stop.
type queryRecorder struct {
	mu        sync.Mutex
	recording bool
	queries   []recordedQuery
}

func (r *queryRecorder) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recording, r.queries = true, nil
}

func (r *queryRecorder) stop() []recordedQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recording = false
	return r.queries
}

func (r *queryRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recording {
		r.queries = append(r.queries, recordedQuery{SQL: data.SQL, Args: data.Args})
	}
	return ctx
}

func (r *queryRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// planNode is one node of EXPLAIN (FORMAT JSON) output.
type planNode struct {
	NodeType      string      `json:"Node Type"`
	IndexName     string      `json:"Index Name"`
	RelationName  string      `json:"Relation Name"`
	IndexCond     string      `json:"Index Cond"`
	Filter        string      `json:"Filter"`
	OneTimeFilter string      `json:"One-Time Filter"`
	ActualRows    float64     `json:"Actual Rows"`
	ActualLoops   float64     `json:"Actual Loops"`
	RowsFiltered  float64     `json:"Rows Removed by Filter"`
	Plans         []*planNode `json:"Plans"`
}

// explain runs q with its arguments under EXPLAIN ANALYZE, planned as the
// store's connections plan it, and returns the plan with actual row counts.
func explain(t *testing.T, pool *pgxpool.Pool, q recordedQuery) *planNode {
	t.Helper()
	var out []struct{ Plan *planNode }
	if err := pool.QueryRow(t.Context(), "EXPLAIN (ANALYZE, FORMAT JSON) "+q.SQL, q.Args...).Scan(&out); err != nil {
		t.Fatalf("explain: %v", err)
	}
	if len(out) != 1 || out[0].Plan == nil {
		t.Fatalf("explain: unexpected output %v", out)
	}
	return out[0].Plan
}

// walk calls f on n and every node below it.
func (n *planNode) walk(f func(*planNode)) {
	f(n)
	for _, c := range n.Plans {
		c.walk(f)
	}
}

// prunedOnly reports whether everything below n is a branch the planner
// proved empty (Result with One-Time Filter: false).
func (n *planNode) prunedOnly() bool {
	if n.NodeType == "Result" && n.OneTimeFilter == "false" {
		return true
	}
	if len(n.Plans) == 0 {
		return false
	}
	for _, c := range n.Plans {
		if !c.prunedOnly() {
			return false
		}
	}
	return true
}

// String indents the plan, one node a line, for failure messages.
func (n *planNode) String() string {
	var b strings.Builder
	var write func(*planNode, int)
	write = func(n *planNode, depth int) {
		fmt.Fprintf(&b, "%s%s (%.0f rows)", strings.Repeat("  ", depth), n.NodeType, n.ActualRows)
		if n.IndexName != "" {
			fmt.Fprintf(&b, " using %s", n.IndexName)
		} else if n.RelationName != "" {
			fmt.Fprintf(&b, " on %s", n.RelationName)
		}
		for _, kv := range [][2]string{{"cond", n.IndexCond}, {"filter", n.Filter}, {"one-time", n.OneTimeFilter}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, " [%s: %s]", kv[0], kv[1])
			}
		}
		b.WriteByte('\n')
		for _, c := range n.Plans {
			write(c, depth+1)
		}
	}
	write(n, 0)
	return b.String()
}

// planDatabase is a migrated database holding planRows, with a pool whose
// queries rec records for their plans.
func planDatabase(t *testing.T) (*pgxpool.Pool, *queryRecorder) {
	t.Helper()
	cfg, err := database.Config(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := &queryRecorder{}
	cfg.ConnConfig.Tracer = rec
	pool, err := database.OpenConfig(t.Context(), cfg, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := database.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	loadPlanRows(t, pool, planRows)
	return pool, rec
}
