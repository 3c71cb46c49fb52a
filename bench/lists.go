package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// Each list run reads pages of pageSize; the deep page is deepPage pages in.
const (
	pageSize = 50
	deepPage = 200
)

// listScenario is one list query: the same filters for the first page and
// for the deep page reached by cursor.
type listScenario struct {
	Name  string
	Query url.Values
	// Goals says whether the list targets apply; the exact count over
	// every match is reported without them.
	Goals bool
}

// listScenarios are the filters the list runs measure: category alone, then
// category with each other kind of filter, then min_level alone (the one
// filter with no single index).
func listScenarios() []listScenario {
	q := func(kv ...string) url.Values {
		v := url.Values{"limit": {fmt.Sprint(pageSize)}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	since := dataStart.Add(10 * 24 * time.Hour).Format(time.RFC3339)
	until := dataStart.Add(20 * 24 * time.Hour).Format(time.RFC3339)
	return []listScenario{
		{"category", q("category", "payments"), true},
		{"category+min_level", q("category", "payments", "min_level", "WARNING"), true},
		{"category+user_id", q("category", "payments", "user_id", "svc-payments"), true},
		{"category+time range", q("category", "payments", "since", since, "until", until), true},
		// The total as clients get it (counted up to the default
		// total_limit), and exact over all the category's matches.
		{"category+include_total", q("category", "payments", "include_total", "true"), true},
		{"category+exact total", q("category", "payments", "include_total", "true", "total_limit", "100000000"), false},
		{"min_level", q("min_level", "ERROR"), true},
	}
}

// listResult is one scenario's runs.
type listResult struct {
	Scenario listScenario
	// Depth is the page the deep runs read: deepPage, or the last page
	// when the filter matches fewer rows.
	Depth int
	// First and Deep are the latency runs (at ListConcurrency), FirstMax
	// and DeepMax the throughput runs (at Concurrency).
	First, Deep, FirstMax, DeepMax stats
	// Floor and FloorMax are the list floor's first page at the same two
	// concurrencies: logstore.Store.List, the server's own sqlc query
	// through a pool opened as the server's, with no HTTP in the way.
	Floor, FloorMax stats
}

// ThroughputRatio is the full stack's first-page rate over the list
// floor's, at the throughput concurrency.
func (r listResult) ThroughputRatio() float64 {
	return ratio(r.FirstMax.PerSecond(), r.FloorMax.PerSecond())
}

// P99Ratio is the full stack's first-page p99 over the list floor's, at
// the latency concurrency.
func (r listResult) P99Ratio() float64 {
	return ratio(float64(r.First.P99), float64(r.Floor.P99))
}

// Ratio is deep-page latency over first-page latency, at p50.
func (r listResult) Ratio() float64 {
	if r.First.P50 <= 0 {
		return 0
	}
	return float64(r.Deep.P50) / float64(r.First.P50)
}

// listResults are the list runs.
type listResults struct {
	Rows int
	// Loaded is whether this run loaded the rows (false: reused the cache).
	Loaded  bool
	Results []listResult
}

// runLists loads (or reuses) the dataset, starts the server on it and
// measures every scenario's first and deep page.
func runLists(ctx context.Context, cfg config, env *benchEnv) (listResults, error) {
	res := listResults{Rows: cfg.Rows}
	dbURL, loaded, err := prepareListDatabase(ctx, cfg, env)
	if err != nil {
		return res, err
	}
	res.Loaded = loaded

	srv, err := env.startServer(ctx, dbURL, "server-list.log")
	if err != nil {
		return res, err
	}
	defer srv.Stop()
	// The list floor's pool is opened exactly as the server opens its own.
	pool, err := database.Open(ctx, dbURL, 30*time.Second, nil)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	store := logstore.New(pool)
	defaultTotalLimit, err := contractTotalLimit()
	if err != nil {
		return res, err
	}
	meter := env.meter
	meter.serverPID = srv.PID()
	base := "http://" + srv.Addr + "/system/logs?"
	for _, sc := range listScenarios() {
		r := listResult{Scenario: sc}
		deep, depth, err := deepCursor(ctx, base, sc.Query)
		if err != nil {
			return res, fmt.Errorf("%s: %w", sc.Name, err)
		}
		r.Depth = depth
		deepQuery := url.Values{}
		for k, v := range sc.Query {
			deepQuery[k] = v
		}
		deepQuery.Set("cursor", deep)
		first := vegeta.Target{Method: http.MethodGet, URL: base + sc.Query.Encode(), Header: authHeader()}
		deepTarget := vegeta.Target{Method: http.MethodGet, URL: base + deepQuery.Encode(), Header: authHeader()}
		get := func(t vegeta.Target) func(load) stats {
			return func(l load) stats { return l.http(ctx, t, http.StatusOK) }
		}
		filter, countUpTo, err := floorQuery(sc.Query, defaultTotalLimit)
		if err != nil {
			return res, fmt.Errorf("%s: %w", sc.Name, err)
		}
		floor := func(l load) stats {
			return l.goroutines(ctx, func(ctx context.Context) error {
				page, err := store.List(ctx, filter, pageSize, "", countUpTo)
				if err == nil && len(page.Items) != pageSize {
					err = fmt.Errorf("list floor: %d items on the first page, want %d", len(page.Items), pageSize)
				}
				return err
			})
		}
		for _, c := range []struct {
			concurrency        int
			first, deep, floor *stats
		}{
			{cfg.ListConcurrency, &r.First, &r.Deep, &r.Floor},
			{cfg.Concurrency, &r.FirstMax, &r.DeepMax, &r.FloorMax},
		} {
			label := fmt.Sprintf("list %s @%d: ", sc.Name, c.concurrency)
			err := interleave(ctx, cfg, env.meter, env.progress, nil,
				contender{label + "first page", c.concurrency, srv.PID(), get(first), c.first},
				contender{fmt.Sprintf("%spage %d", label, depth), c.concurrency, srv.PID(), get(deepTarget), c.deep},
				contender{label + "list floor, first page", c.concurrency, 0, floor, c.floor},
			)
			if err != nil {
				return res, err
			}
		}
		res.Results = append(res.Results, r)
	}
	if err := srv.Stop(); err != nil {
		return res, err
	}
	return res, nil
}

// prepareListDatabase migrates the list database and makes sure it holds
// the dataset, reusing the one cached by an earlier run. A cached database
// that no longer migrates (its migrations were renumbered, say) is only a
// cache: it is dropped and loaded again. It returns the database's URL and
// whether this run loaded the rows.
func prepareListDatabase(ctx context.Context, cfg config, env *benchEnv) (string, bool, error) {
	const dbName = "bench_list"
	if err := env.cluster.CreateDatabase(ctx, dbName); err != nil {
		return "", false, err
	}
	dbURL := env.cluster.ConnString(dbName)
	for attempt := 0; ; attempt++ {
		pool, err := database.Open(ctx, dbURL, 30*time.Second, nil)
		if err != nil {
			return "", false, err
		}
		applied, err := database.Migrate(ctx, pool)
		if err != nil {
			pool.Close()
			if attempt > 0 {
				return "", false, err
			}
			env.progress("the cached list database does not migrate (%v); loading it again", err)
			if err := env.recreateDatabase(ctx, dbName); err != nil {
				return "", false, err
			}
			continue
		}
		loaded, err := ensureDataset(ctx, pool, cfg.Rows, len(applied) > 0, env.progress)
		pool.Close()
		return dbURL, loaded, err
	}
}

// deepCursor follows next_cursor from the first page of query to page
// deepPage (or the last page) and returns the cursor that reads it, with
// its page number.
func deepCursor(ctx context.Context, base string, query url.Values) (string, int, error) {
	q := url.Values{}
	for k, v := range query {
		if k != "include_total" && k != "total_limit" { // the cursor is the same; counting 200 times is not
			q[k] = v
		}
	}
	cursor := ""
	page := 1
	for ; page < deepPage; page++ {
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		next, err := nextCursor(ctx, base+q.Encode())
		if err != nil {
			return "", 0, fmt.Errorf("page %d: %w", page, err)
		}
		if next == "" {
			if cursor == "" {
				return "", 0, fmt.Errorf("the filter matches only one page")
			}
			break
		}
		cursor = next
	}
	return cursor, page, nil
}

// nextCursor gets one full page and returns its next_cursor ("" on the last).
func nextCursor(ctx context.Context, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	req.Header = authHeader()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	var page api.SystemLogList
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return "", fmt.Errorf("GET %s: %w", target, err)
	}
	if page.NextCursor == nil {
		return "", nil
	}
	if len(page.Items) != pageSize {
		return "", fmt.Errorf("GET %s: %d items on a page with a next cursor", target, len(page.Items))
	}
	return *page.NextCursor, nil
}

// floorQuery turns a scenario's query into what the server passes its
// store for it: the filter, and how many matches to count (0 for none).
// include_total without total_limit counts up to the contract's default.
func floorQuery(q url.Values, defaultTotalLimit int64) (logstore.Filter, int64, error) {
	var f logstore.Filter
	str := func(name string) *string {
		if !q.Has(name) {
			return nil
		}
		v := q.Get(name)
		return &v
	}
	at := func(name string) (*time.Time, error) {
		if !q.Has(name) {
			return nil, nil
		}
		t, err := time.Parse(time.RFC3339, q.Get(name))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &t, nil
	}
	var err error
	f.Levels = q["level"]
	f.MinLevel = q.Get("min_level")
	f.Category, f.CorrelationID, f.UserID, f.TraceID = str("category"), str("correlation_id"), str("user_id"), str("trace_id")
	if f.Since, err = at("since"); err != nil {
		return f, 0, err
	}
	if f.Until, err = at("until"); err != nil {
		return f, 0, err
	}
	for k := range q {
		switch k {
		case "limit", "level", "min_level", "category", "correlation_id", "user_id", "trace_id", "since", "until",
			"include_total", "total_limit":
		default:
			return f, 0, fmt.Errorf("the list floor does not know the parameter %q", k)
		}
	}
	if q.Get("include_total") != "true" {
		return f, 0, nil
	}
	if !q.Has("total_limit") {
		return f, defaultTotalLimit, nil
	}
	n, err := strconv.ParseInt(q.Get("total_limit"), 10, 64)
	if err != nil {
		return f, 0, fmt.Errorf("total_limit: %w", err)
	}
	return f, n, nil
}

// contractTotalLimit is the default of listSystemLogs' total_limit in
// openapi.yaml: what include_total counts up to when a client sets none.
func contractTotalLimit() (int64, error) {
	spec, err := api.GetSwagger()
	if err != nil {
		return 0, fmt.Errorf("load the contract: %w", err)
	}
	item := spec.Paths.Find("/system/logs")
	if item == nil || item.Get == nil {
		return 0, fmt.Errorf("the contract has no GET /system/logs")
	}
	p := item.Get.Parameters.GetByInAndName("query", "total_limit")
	if p == nil || p.Schema == nil || p.Schema.Value == nil {
		return 0, fmt.Errorf("the contract has no total_limit parameter")
	}
	d, ok := p.Schema.Value.Default.(float64)
	if !ok || d <= 0 {
		return 0, fmt.Errorf("total_limit's default %v is not a positive number", p.Schema.Value.Default)
	}
	return int64(d), nil
}
