package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestWriteAndRead writes an entry with every field, reads it back by its
// Location, and checks every field is present and as written.
func TestWriteAndRead(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	in := api.SystemLogCreate{
		Level:         ptr(api.LogLevel("WARNING")),
		Category:      ptr("auth"),
		Message:       "user signed in from a new device ✓",
		CorrelationId: ptr("checkout-7f3a"),
		UserId:        ptr("user-42"),
		Context:       ptr(json.RawMessage(`{"ip":"203.0.113.7","attempt":2,"tags":["a","b"]}`)),
	}
	before := time.Now().Add(-time.Second)
	created, err := srv.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{}, in)
	if err != nil {
		t.Fatal(err)
	}
	if created.StatusCode() != http.StatusCreated || created.JSON201 == nil {
		t.Fatalf("status %d: %s", created.StatusCode(), created.Body)
	}
	got := created.JSON201
	if got.Id.Version() != 7 {
		t.Errorf("id %s is UUID version %d, want 7", got.Id, got.Id.Version())
	}
	if got.Timestamp.Before(before) || got.Timestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("timestamp %v is not now", got.Timestamp)
	}
	if got.Level != "WARNING" || got.Category != "auth" || got.Message != in.Message ||
		got.CorrelationId != "checkout-7f3a" || got.UserId == nil || *got.UserId != "user-42" || got.Actor != "bootstrap" {
		t.Errorf("stored %+v, want the input", got)
	}
	assertJSONEqual(t, got.Context, *in.Context)

	loc := created.HTTPResponse.Header.Get("Location")
	if loc != "/system/logs/"+got.Id.String() {
		t.Fatalf("Location %q", loc)
	}
	resp, raw := srv.do(t, "GET", loc, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", loc, resp.StatusCode, raw)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := "actor category context correlation_id id leaf_hash level message seq timestamp trace_id user_id"; strings.Join(keys, " ") != want {
		t.Errorf("fields %v, want %s", keys, want)
	}
	var read api.SystemLog
	if err := json.Unmarshal(raw, &read); err != nil {
		t.Fatal(err)
	}
	if read.Id != got.Id || !read.Timestamp.Equal(got.Timestamp) || read.Message != got.Message {
		t.Errorf("read %+v, want %+v", read, got)
	}
}

// TestWriteDefaults: level INFO, category general, context {}, user_id null,
// and the correlation id is the request's X-Request-ID.
func TestWriteDefaults(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	created, err := srv.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{},
		api.SystemLogCreate{Message: "plain"}, withRequestID("req-defaults-1"))
	if err != nil || created.JSON201 == nil {
		t.Fatalf("%v %s", err, created.Body)
	}
	got := created.JSON201
	if got.Level != "INFO" || got.Category != "general" || got.UserId != nil || got.CorrelationId != "req-defaults-1" {
		t.Errorf("defaults: %+v", got)
	}
	assertJSONEqual(t, got.Context, json.RawMessage(`{}`))
	if !strings.Contains(string(created.Body), `"user_id":null`) {
		t.Errorf("user_id must be present as null: %s", created.Body)
	}
}

// TestCorrelationTracking: entries written under one request id are found by
// it, and a minted id is stored as written.
func TestCorrelationTracking(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	for i := range 3 {
		write(t, srv, api.SystemLogCreate{Message: fmt.Sprint("step ", i)}, "flow-abc")
	}
	write(t, srv, api.SystemLogCreate{Message: "other"}, "flow-xyz")
	minted, err := srv.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{}, api.SystemLogCreate{Message: "minted"})
	if err != nil || minted.JSON201 == nil {
		t.Fatal(err)
	}
	if minted.JSON201.CorrelationId != minted.HTTPResponse.Header.Get(requestid.Header) {
		t.Errorf("stored correlation id %q, response header %q", minted.JSON201.CorrelationId, minted.HTTPResponse.Header.Get(requestid.Header))
	}
	page := list(t, srv, api.ListSystemLogsParams{CorrelationId: ptr("flow-abc")})
	if got := messages(page.Items); strings.Join(got, ",") != "step 2,step 1,step 0" {
		t.Errorf("flow-abc: %v", got)
	}
}

// TestBatchWrite: items come back in input order with distinct ids and are
// all stored; one bad entry rejects the whole batch and stores nothing.
func TestBatchWrite(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	entries := make([]api.SystemLogCreate, 50)
	for i := range entries {
		entries[i] = api.SystemLogCreate{Message: fmt.Sprint("b", i), Category: ptr("batch")}
	}
	resp, err := srv.Client.CreateSystemLogBatchWithResponse(ctx(t), &api.CreateSystemLogBatchParams{},
		api.SystemLogBatchCreate{Entries: entries}, withRequestID("batch-1"))
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("%v %s", err, resp.Body)
	}
	seen := map[uuid.UUID]bool{}
	for i, item := range resp.JSON201.Items {
		if item.Message != entries[i].Message || item.CorrelationId != "batch-1" || seen[item.Id] {
			t.Fatalf("item %d: %+v", i, item)
		}
		seen[item.Id] = true
		got, err := srv.Client.GetSystemLogWithResponse(ctx(t), item.Id, &api.GetSystemLogParams{})
		if err != nil || got.JSON200 == nil || got.JSON200.Message != item.Message {
			t.Fatalf("item %d not stored: %v %s", i, err, got.Body)
		}
	}

	bad := []api.SystemLogCreate{{Message: "ok", Category: ptr("atomic")}, {Message: "a\x00b", Category: ptr("atomic")}, {Message: "ok", Category: ptr("atomic")}}
	rejected, err := srv.Client.CreateSystemLogBatchWithResponse(ctx(t), &api.CreateSystemLogBatchParams{}, api.SystemLogBatchCreate{Entries: bad})
	if err != nil {
		t.Fatal(err)
	}
	if rejected.StatusCode() != 422 || rejected.ApplicationproblemJSON422 == nil {
		t.Fatalf("status %d: %s", rejected.StatusCode(), rejected.Body)
	}
	if got := locations(*rejected.ApplicationproblemJSON422); strings.Join(got, ",") != "pointer /entries/1/message" {
		t.Errorf("located at %v", got)
	}
	if n := len(list(t, srv, api.ListSystemLogsParams{Category: ptr("atomic")}).Items); n != 0 {
		t.Errorf("%d entries of a rejected batch were stored", n)
	}
}

// TestListFilters checks every filter and their combinations against the
// same selection done in Go over what was written.
func TestListFilters(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	levels := contractLevels(t) // lowest severity first, as min_level reads them
	categories := []string{"auth", "finance", "system"}
	users := []*string{nil, ptr("alice"), ptr("bob")}
	var all []api.SystemLog
	// Three batches at distinct instants, for since/until.
	var instants []time.Time
	for b := range 3 {
		var entries []api.SystemLogCreate
		for i := range 30 {
			entries = append(entries, api.SystemLogCreate{
				Message:       fmt.Sprintf("b%d-%d", b, i),
				Level:         &levels[(i+b)%len(levels)],
				Category:      &categories[i%len(categories)],
				UserId:        users[(i/3)%len(users)],
				CorrelationId: ptr(fmt.Sprint("corr-", i%4)),
			})
		}
		resp, err := srv.Client.CreateSystemLogBatchWithResponse(ctx(t), &api.CreateSystemLogBatchParams{}, api.SystemLogBatchCreate{Entries: entries})
		if err != nil || resp.JSON201 == nil {
			t.Fatalf("%v %s", err, resp.Body)
		}
		all = append(all, resp.JSON201.Items...)
		instants = append(instants, resp.JSON201.Items[0].Timestamp)
		time.Sleep(5 * time.Millisecond)
	}
	severity := func(l api.LogLevel) int { return slices.Index(levels, l) }
	tests := []struct {
		name   string
		params api.ListSystemLogsParams
		keep   func(api.SystemLog) bool
	}{
		{"none", api.ListSystemLogsParams{}, func(api.SystemLog) bool { return true }},
		{"level", api.ListSystemLogsParams{Level: &[]api.LogLevel{"ERROR"}},
			func(l api.SystemLog) bool { return l.Level == "ERROR" }},
		{"levels repeated", api.ListSystemLogsParams{Level: &[]api.LogLevel{"DEBUG", "CRITICAL"}},
			func(l api.SystemLog) bool { return l.Level == "DEBUG" || l.Level == "CRITICAL" }},
		{"min_level", api.ListSystemLogsParams{MinLevel: ptr(api.LogLevel("WARNING"))},
			func(l api.SystemLog) bool { return severity(l.Level) >= 2 }},
		{"min_level and levels", api.ListSystemLogsParams{MinLevel: ptr(api.LogLevel("ERROR")), Level: &[]api.LogLevel{"INFO", "ERROR"}},
			func(l api.SystemLog) bool { return l.Level == "ERROR" }},
		{"min_level above levels", api.ListSystemLogsParams{MinLevel: ptr(api.LogLevel("CRITICAL")), Level: &[]api.LogLevel{"INFO"}},
			func(l api.SystemLog) bool { return false }},
		{"category", api.ListSystemLogsParams{Category: ptr("finance")},
			func(l api.SystemLog) bool { return l.Category == "finance" }},
		{"category and level", api.ListSystemLogsParams{Category: ptr("auth"), Level: &[]api.LogLevel{"INFO", "WARNING"}},
			func(l api.SystemLog) bool { return l.Category == "auth" && (l.Level == "INFO" || l.Level == "WARNING") }},
		{"correlation_id", api.ListSystemLogsParams{CorrelationId: ptr("corr-1")},
			func(l api.SystemLog) bool { return l.CorrelationId == "corr-1" }},
		{"user_id", api.ListSystemLogsParams{UserId: ptr("alice")},
			func(l api.SystemLog) bool { return l.UserId != nil && *l.UserId == "alice" }},
		{"user_id and min_level and category", api.ListSystemLogsParams{UserId: ptr("bob"), MinLevel: ptr(api.LogLevel("INFO")), Category: ptr("system")},
			func(l api.SystemLog) bool {
				return l.UserId != nil && *l.UserId == "bob" && severity(l.Level) >= 1 && l.Category == "system"
			}},
		{"since inclusive", api.ListSystemLogsParams{Since: &instants[1]},
			func(l api.SystemLog) bool { return !l.Timestamp.Before(instants[1]) }},
		{"until exclusive", api.ListSystemLogsParams{Until: &instants[1]},
			func(l api.SystemLog) bool { return l.Timestamp.Before(instants[1]) }},
		{"since and until", api.ListSystemLogsParams{Since: &instants[1], Until: &instants[2]},
			func(l api.SystemLog) bool { return l.Timestamp.Equal(instants[1]) }},
		{"time range and correlation and level", api.ListSystemLogsParams{Since: &instants[0], Until: &instants[2], CorrelationId: ptr("corr-2"), Level: &[]api.LogLevel{"DEBUG", "INFO", "ERROR"}},
			func(l api.SystemLog) bool {
				return l.Timestamp.Before(instants[2]) && l.CorrelationId == "corr-2" && slices.Contains([]api.LogLevel{"DEBUG", "INFO", "ERROR"}, l.Level)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var want []string
			for _, l := range newestFirst(all) {
				if tt.keep(l) {
					want = append(want, l.Id.String())
				}
			}
			// Small pages, so every filter is also paginated.
			params := tt.params
			params.Limit = ptr(int32(7))
			params.IncludeTotal = ptr(true)
			got, total := listAll(t, srv, params)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("got %d ids, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
			}
			if total != int64(len(want)) {
				t.Errorf("total %d, want %d", total, len(want))
			}
			// The count stops at total_limit, and says whether it did.
			counted := func(limit int64) (int64, api.SystemLogListTotalRelation) {
				p := tt.params
				p.IncludeTotal, p.TotalLimit = ptr(true), &limit
				page := list(t, srv, p)
				if page.Total == nil || page.TotalRelation == nil {
					t.Fatalf("total_limit=%d: no total or total_relation", limit)
				}
				return *page.Total, *page.TotalRelation
			}
			n := int64(len(want))
			if got, rel := counted(max(n, 1)); got != n || rel != api.Eq {
				t.Errorf("total_limit=%d: total %d %s, want %d eq", max(n, 1), got, rel, n)
			}
			if n > 1 {
				if got, rel := counted(n - 1); got != n-1 || rel != api.Gte {
					t.Errorf("total_limit=%d: total %d %s, want %d gte", n-1, got, rel, n-1)
				}
			}
		})
	}
}

// TestPaginationWithConcurrentWrites pages through entries while new ones are
// written between calls: no entry is skipped or repeated, and the last page
// has no next cursor.
func TestPaginationWithConcurrentWrites(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	var want []string
	for i := range 23 {
		want = append(want, write(t, srv, api.SystemLogCreate{Message: fmt.Sprint("p", i), Category: ptr("paged")}, "").Id.String())
	}
	slices.Reverse(want)

	var got []string
	params := api.ListSystemLogsParams{Category: ptr("paged"), Limit: ptr(int32(5))}
	for page := 0; ; page++ {
		resp := list(t, srv, params)
		for _, l := range resp.Items {
			got = append(got, l.Id.String())
		}
		if resp.Total != nil {
			t.Errorf("total present without include_total")
		}
		// Writes between pages land before the first page, not in later ones.
		write(t, srv, api.SystemLogCreate{Message: fmt.Sprint("late", page), Category: ptr("paged")}, "")
		if resp.NextCursor == nil {
			if len(resp.Items) == 0 && page > 0 {
				t.Errorf("empty last page: a next_cursor was given for nothing")
			}
			break
		}
		params.Cursor = resp.NextCursor
		if page > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("paged ids:\n got %v\nwant %v", got, want)
	}
}

func write(t *testing.T, srv *instance, in api.SystemLogCreate, requestID string) api.SystemLog {
	t.Helper()
	var editors []api.RequestEditorFn
	if requestID != "" {
		editors = append(editors, withRequestID(requestID))
	}
	resp, err := srv.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{}, in, editors...)
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("write: %v %s", err, resp.Body)
	}
	return *resp.JSON201
}

func list(t *testing.T, srv *instance, params api.ListSystemLogsParams) api.SystemLogList {
	t.Helper()
	resp, err := srv.Client.ListSystemLogsWithResponse(ctx(t), &params)
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("list: %v %s", err, resp.Body)
	}
	return *resp.JSON200
}

// listAll follows cursors to the end and returns every id and the total.
func listAll(t *testing.T, srv *instance, params api.ListSystemLogsParams) ([]string, int64) {
	t.Helper()
	var ids []string
	var total int64 = -1
	for range 1000 {
		page := list(t, srv, params)
		for _, l := range page.Items {
			ids = append(ids, l.Id.String())
		}
		if page.Total != nil {
			total = *page.Total
		}
		if page.NextCursor == nil {
			return ids, total
		}
		params.Cursor = page.NextCursor
	}
	t.Fatal("pagination does not end")
	return nil, 0
}

// newestFirst sorts entries as the API does: timestamp descending, then id.
func newestFirst(in []api.SystemLog) []api.SystemLog {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b api.SystemLog) int {
		if c := b.Timestamp.Compare(a.Timestamp); c != 0 {
			return c
		}
		return strings.Compare(b.Id.String(), a.Id.String())
	})
	return out
}

func messages(items []api.SystemLog) []string {
	out := make([]string, len(items))
	for i, l := range items {
		out[i] = l.Message
	}
	return out
}

func assertJSONEqual(t *testing.T, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got: %v", err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want: %v", err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("JSON %s, want %s", gb, wb)
	}
}

// TestAnyCursorOfTheContractsShapeIsAccepted: a cursor matching the
// contract's pattern is a position, not an error (Schemathesis found
// schema-valid cursors refused); one that does not match is a 422.
func TestAnyCursorOfTheContractsShapeIsAccepted(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	write(t, srv, api.SystemLogCreate{Message: "m"}, "")
	for _, cursor := range []string{"AQ" + strings.Repeat("A", 32), "AT" + strings.Repeat("_", 32), "AR" + strings.Repeat("z9-", 10) + "zz"} {
		resp, err := srv.Client.ListSystemLogsWithResponse(ctx(t), &api.ListSystemLogsParams{Cursor: &cursor})
		if err != nil || resp.JSON200 == nil {
			t.Errorf("cursor %q: %v %d %s", cursor, err, resp.StatusCode(), resp.Body)
		}
	}
	resp, body := srv.do(t, "GET", "/system/logs?cursor=AQ", "", nil)
	if resp.StatusCode != 422 || strings.Join(locations(problemOf(t, body)), ",") != "parameter cursor" {
		t.Errorf("short cursor: %d %s", resp.StatusCode, body)
	}
}

// contractLevels returns the contract's LogLevel enum, in its order (lowest
// severity first).
func contractLevels(t *testing.T) []api.LogLevel {
	t.Helper()
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	var levels []api.LogLevel
	for _, v := range spec.Components.Schemas["LogLevel"].Value.Enum {
		levels = append(levels, api.LogLevel(fmt.Sprint(v)))
	}
	if len(levels) == 0 {
		t.Fatal("the contract's LogLevel has no enum")
	}
	return levels
}
