package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/lifecycle"
)

// command runs valhalla args on srv's database and returns its output and
// error; a run that finds the server maintaining at that moment is
// retried, for a bounded time.
func (in *instance) command(t *testing.T, args ...string) (string, error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out syncBuffer
		err := run(ctx(t), args, func(k string) string { return in.env[k] }, &out, &out)
		if err == nil || !strings.Contains(err.Error(), lifecycle.ErrBusy.Error()) || time.Now().After(deadline) {
			return out.String(), err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storeOld stores entries with old timestamps as the API stores them (each
// queued for sealing in the same statement), as if written back then.
func storeOld(t *testing.T, pool *pgxpool.Pool, at time.Time, categories ...string) []uuid.UUID {
	t.Helper()
	var p db.InsertQueuedLogsParams
	var ids []uuid.UUID
	for i, c := range categories {
		id := uuid.Must(uuid.NewV7())
		ids = append(ids, id)
		p.Ids, p.Timestamps, p.Levels, p.Categories = append(p.Ids, id), append(p.Timestamps, at.Add(time.Duration(i)*time.Second)), append(p.Levels, "INFO"), append(p.Categories, c)
		p.Messages, p.CorrelationIds, p.UserIds = append(p.Messages, fmt.Sprintf("old %d", i)), append(p.CorrelationIds, "old"), append(p.UserIds, "")
		p.Contexts, p.TraceIds, p.Actors = append(p.Contexts, json.RawMessage(`{}`)), append(p.TraceIds, ""), append(p.Actors, "importer")
	}
	if _, err := db.New(pool).InsertQueuedLogs(ctx(t), p); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestRetentionRunHoldsAndVerify walks the lifecycle as an operator does:
// a legal hold, a dry run that prints the partitions and what the policy
// would drop and changes nothing, the run that drops them, the held
// entries still served by get, list and feed, valhalla verify passing
// with the retired entries accounted for by signed records, and a
// deletion no record covers still found.
func TestRetentionRunHoldsAndVerify(t *testing.T) {
	t.Parallel()
	srv, pool := ledgerSetup(t)
	key := serverKey(t, srv)
	now := time.Now().UTC()
	day1, day2 := now.Add(-40*24*time.Hour), now.Add(-39*24*time.Hour)
	old1 := storeOld(t, pool, day1, "legal", "billing", "billing")
	old2 := storeOld(t, pool, day2, "billing", "legal")
	sealed := writeSealed(t, srv, pool, 3) // the whole feed, old entries first
	last := sealed[len(sealed)-1]

	out, err := srv.command(t, "holds", "create", "--name", "matter-42", "--reason", "litigation hold, ticket LEG-7", "--category", "legal")
	if err != nil || !strings.Contains(out, `created legal hold "matter-42": category=legal`) {
		t.Fatalf("holds create: %v\n%s", err, out)
	}
	if out, err = srv.command(t, "holds", "list"); err != nil || !regexp.MustCompile(`matter-42\s+category=legal\s+\S+\s+-\s+litigation hold`).MatchString(out) {
		t.Fatalf("holds list: %v\n%s", err, out)
	}
	// The old entries went to the default partition (no partition
	// covered their days); a run without a retention (this one, or the
	// server's own if it ran since) gives them their daily partitions.
	p1, p2 := "system_logs_p"+day1.Format("20060102"), "system_logs_p"+day2.Format("20060102")
	if out, err = srv.command(t, "retention", "run"); err != nil || !strings.Contains(out, "nothing is dropped") {
		t.Fatalf("retention run (forever): %v\n%s", err, out)
	}
	var inDays int
	if err := pool.QueryRow(ctx(t), "SELECT count(*) FROM system_logs WHERE tableoid::regclass::text IN ($1, $2)", p1, p2).Scan(&inDays); err != nil || inDays != 5 {
		t.Fatalf("%d old entries in %s and %s (%v), want 5:\n%s", inDays, p1, p2, err, out)
	}

	out, err = srv.command(t, "retention", "run", "--dry-run", "--retention", "30d")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	for _, want := range []string{
		"retention: 720h0m0s, cutoff",
		p1 + ` .* would drop: 2 sealed entries retired \(seq \d+-\d+\), 1 kept by legal holds`,
		p2 + ` .* would drop: 1 sealed entries retired \(seq \d+-\d+\), 1 kept by legal holds`,
		`system_logs_p` + now.Format("20060102") + ` .* keep`,
		`system_logs_default .* keep`,
		"would drop 2 partitions: 3 entries retired, 2 kept by legal holds",
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if n := countRows(t, pool); n != 8 {
		t.Fatalf("the dry run changed the table: %d entries, want 8", n)
	}

	before, err := srv.Client.GetSystemLogProofWithResponse(ctx(t), old1[1], &api.GetSystemLogProofParams{})
	if err != nil || before.JSON200 == nil {
		t.Fatalf("proof before retention: %v %s", err, before.Body)
	}
	if out, err = srv.command(t, "retention", "run", "--retention", "30d"); err != nil || !strings.Contains(out, "dropped 2 partitions: 3 entries retired, 2 kept by legal holds") {
		t.Fatalf("retention run: %v\n%s", err, out)
	}
	// The tree stays whole: a retired entry still has its proof.
	after, err := srv.Client.GetSystemLogProofWithResponse(ctx(t), old1[1], &api.GetSystemLogProofParams{})
	if err != nil || after.JSON200 == nil || after.JSON200.Seq != before.JSON200.Seq ||
		string(after.JSON200.LeafHash) != string(before.JSON200.LeafHash) {
		t.Errorf("proof of a retired entry: %v %d %s, want seq %d", err, after.StatusCode(), after.Body, before.JSON200.Seq)
	}
	for _, id := range []uuid.UUID{old1[0], old2[1]} {
		resp, err := srv.Client.GetSystemLogWithResponse(ctx(t), id, &api.GetSystemLogParams{})
		if err != nil || resp.JSON200 == nil {
			t.Errorf("held entry %s: %v %d", id, err, resp.StatusCode())
		}
	}
	if resp, err := srv.Client.GetSystemLogWithResponse(ctx(t), old1[1], &api.GetSystemLogParams{}); err != nil || resp.StatusCode() != 404 {
		t.Errorf("retired entry: %v %d, want 404", err, resp.StatusCode())
	}
	legal := "legal"
	list, err := srv.Client.ListSystemLogsWithResponse(ctx(t), &api.ListSystemLogsParams{Category: &legal})
	if err != nil || list.JSON200 == nil || len(list.JSON200.Items) != 2 {
		t.Fatalf("list of held entries: %v %s", err, list.Body)
	}
	feed, err := srv.Client.GetSystemLogFeedWithResponse(ctx(t), &api.GetSystemLogFeedParams{Limit: ptr(int32(100))})
	if err != nil || feed.JSON200 == nil || len(feed.JSON200.Items) != 5 || len(feed.JSON200.Missing) != 3 {
		t.Fatalf("feed: %v %s", err, feed.Body)
	}
	records, err := srv.Client.ListLedgerRetirementsWithResponse(ctx(t), &api.ListLedgerRetirementsParams{})
	if err != nil || records.JSON200 == nil || len(records.JSON200.Items) != 2 || records.JSON200.Items[0].Partition != p1 {
		t.Fatalf("retention records: %v %s", err, records.Body)
	}

	out, ok := verifyRun(t, srv, key, "")
	if !ok || !strings.Contains(out, "verified 8 entries") || !strings.Contains(out, "3 entries retired by 2 signed retention records") {
		t.Fatalf("verify after retention:\n%s", out)
	}

	// A deletion no record covers is still a finding.
	sqlExec(t, pool, "DELETE FROM system_logs WHERE id = $1", last.Id)
	out, ok = verifyRun(t, srv, key, "")
	if want := fmt.Sprintf("FINDING missing: seq %d id %s", *last.Seq, last.Id); ok || !strings.Contains(out, want) {
		t.Errorf("verify after an unrecorded deletion (want %q):\n%s", want, out)
	}
	if strings.Count(out, "FINDING") != 1 {
		t.Errorf("want exactly one finding:\n%s", out)
	}

	if out, err = srv.command(t, "holds", "release", "matter-42"); err != nil || !strings.Contains(out, `released legal hold "matter-42"`) {
		t.Fatalf("holds release: %v\n%s", err, out)
	}
	if out, err = srv.command(t, "retention", "run", "--retention", "30d"); err != nil || !strings.Contains(out, "dropped 2 partitions: 2 entries retired, 0 kept by legal holds") {
		t.Fatalf("retention run after the release: %v\n%s", err, out)
	}
	if resp, err := srv.Client.GetSystemLogWithResponse(ctx(t), old1[0], &api.GetSystemLogParams{}); err != nil || resp.StatusCode() != 404 {
		t.Errorf("released entry: %v %d, want 404", err, resp.StatusCode())
	}
}

func countRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(ctx(t), "SELECT count(*) FROM system_logs").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
