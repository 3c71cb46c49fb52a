package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/database"
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
		for _, c := range []struct {
			concurrency int
			first, deep *stats
		}{
			{cfg.ListConcurrency, &r.First, &r.Deep},
			{cfg.Concurrency, &r.FirstMax, &r.DeepMax},
		} {
			label := fmt.Sprintf("list %s @%d: ", sc.Name, c.concurrency)
			err := interleave(ctx, cfg, env.meter, env.progress, nil,
				contender{label + "first page", c.concurrency, srv.PID(), get(first), c.first},
				contender{fmt.Sprintf("%spage %d", label, depth), c.concurrency, srv.PID(), get(deepTarget), c.deep},
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
