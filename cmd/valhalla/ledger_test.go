package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// ledgerSetup starts a server sealing every 50 ms on a fresh database and
// returns it with a pool on the same database.
func ledgerSetup(t *testing.T) (*instance, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	srv := startServer(t, map[string]string{"DATABASE_URL": url, "VALHALLA_SEAL_INTERVAL": "50ms"})
	pool, err := database.Open(ctx(t), url, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return srv, pool
}

// follower reads the feed from the start, following next_after.
type follower struct {
	after int64
	seqs  []int64
	ids   []string
}

// poll reads feed pages until one is empty.
func (f *follower) poll(t *testing.T, c *api.ClientWithResponses, params api.GetSystemLogFeedParams) {
	t.Helper()
	for {
		params.After = &f.after
		resp, err := c.GetSystemLogFeedWithResponse(context.Background(), &params)
		if err != nil || resp.JSON200 == nil {
			t.Errorf("feed after %d: %v %d %s", f.after, err, resp.StatusCode(), resp.Body)
			return
		}
		for _, e := range resp.JSON200.Items {
			f.seqs = append(f.seqs, *e.Seq)
			f.ids = append(f.ids, e.Id.String())
		}
		if resp.JSON200.NextAfter < f.after {
			t.Errorf("next_after went back from %d to %d", f.after, resp.JSON200.NextAfter)
		}
		moved := resp.JSON200.NextAfter != f.after
		f.after = resp.JSON200.NextAfter
		if !moved {
			return
		}
	}
}

// waitSealed polls until no entry waits to be sealed.
func waitSealed(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var waiting, size int64
		err := pool.QueryRow(ctx(t), `SELECT (SELECT count(*) FROM ledger_queue), (SELECT coalesce(max(tree_size), 0) FROM ledger_checkpoints)`).Scan(&waiting, &size)
		if err == nil && waiting == 0 {
			var seq int64
			if err := pool.QueryRow(ctx(t), `SELECT coalesce(max(last_seq), 0) FROM ledger_blocks`).Scan(&seq); err == nil && seq == size {
				return size
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries still unsealed after 60s (%v)", waiting, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lateWrite stores one entry the way the API does (the row and its place
// in the queue in one transaction) but holds the transaction open for
// hold before committing.
func lateWrite(pool *pgxpool.Pool, hold time.Duration, category string) error {
	c := context.Background()
	tx, err := pool.Begin(c)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(c) }()
	id := uuid.Must(uuid.NewV7())
	if _, err := tx.Exec(c, `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, actor)
		VALUES ($1, now(), 'INFO', $2, 'late commit', 'late', 'test')`, id, category); err != nil {
		return err
	}
	if _, err := tx.Exec(c, `INSERT INTO ledger_queue (log_ids, log_timestamps, leaf_hashes) VALUES (ARRAY[$1::uuid], ARRAY[now()], ARRAY[NULL::bytea])`, id); err != nil {
		return err
	}
	time.Sleep(hold) // the point: the transaction stays open
	return tx.Commit(c)
}

// checkFollowed: the follower saw seqs 1..n once each, in order, and
// exactly the entries of the table.
func checkFollowed(t *testing.T, pool *pgxpool.Pool, f *follower, where string) {
	t.Helper()
	rows, err := pool.Query(ctx(t), "SELECT id::text FROM system_logs "+where)
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		table[id] = true
	}
	seen := map[string]bool{}
	for i, id := range f.ids {
		if seen[id] {
			t.Errorf("entry %s seen twice", id)
		}
		seen[id] = true
		if !table[id] {
			t.Errorf("entry %s followed but not in the table", id)
		}
		if i > 0 && f.seqs[i] <= f.seqs[i-1] {
			t.Errorf("seq %d after %d", f.seqs[i], f.seqs[i-1])
		}
	}
	for id := range table {
		if !seen[id] {
			t.Errorf("entry %s in the table was never followed", id)
		}
	}
}

// TestFeedNeverSkips: writers (single writes, batches, and transactions
// held open so they commit late) run while followers poll the feed, one
// unfiltered and one filtered; afterwards each follower has seen exactly
// the table's entries (those matching its filter), each once, and the
// unfiltered one every seq from 1 with no gap.
func TestFeedNeverSkips(t *testing.T) {
	t.Parallel()
	srv, pool := ledgerSetup(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var status int
				if i%5 == 4 {
					body := fmt.Sprintf(`{"entries":[{"message":"b%d.0","category":"feed-%d"},{"message":"b%d.1","category":"odd"}]}`, i, w%2, i)
					resp, _ := srv.do(t, "POST", "/system/logs/batch", "application/json", strings.NewReader(body))
					status = resp.StatusCode
				} else {
					resp, _ := srv.do(t, "POST", "/system/logs", "application/json", strings.NewReader(fmt.Sprintf(`{"message":"w%d","category":"feed-%d"}`, i, w%2)))
					status = resp.StatusCode
				}
				if status != http.StatusCreated {
					t.Errorf("write: %d", status)
					return
				}
				writes.Add(1)
			}
		})
	}
	for l := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Held across several seal passes.
				if err := lateWrite(pool, time.Duration(100+100*l)*time.Millisecond, "feed-0"); err != nil {
					t.Errorf("late write: %v", err)
					return
				}
			}
		})
	}
	var all, filtered follower
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		for {
			all.poll(t, srv.Client, api.GetSystemLogFeedParams{Limit: ptr(int32(37))})
			filtered.poll(t, srv.Client, api.GetSystemLogFeedParams{Category: ptr("feed-0"), Limit: ptr(int32(11))})
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for writes.Load() < 600 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	<-followed
	size := waitSealed(t, pool)
	all.poll(t, srv.Client, api.GetSystemLogFeedParams{Limit: ptr(int32(37))})
	filtered.poll(t, srv.Client, api.GetSystemLogFeedParams{Category: ptr("feed-0"), Limit: ptr(int32(11))})
	if int64(len(all.seqs)) != size {
		t.Errorf("followed %d entries, tree has %d", len(all.seqs), size)
	}
	for i, s := range all.seqs {
		if s != int64(i+1) {
			t.Fatalf("entry %d followed has seq %d: a gap or a repeat", i+1, s)
		}
	}
	checkFollowed(t, pool, &all, "")
	checkFollowed(t, pool, &filtered, "WHERE category = 'feed-0'")
	t.Logf("feed: %d entries followed by the unfiltered poller, %d by the filtered one; no gap, no repeat", len(all.ids), len(filtered.ids))
}

// serverKey returns the verifier key of srv's ledger key file.
func serverKey(t *testing.T, srv *instance) string {
	t.Helper()
	key, err := ledger.LoadOrCreateKey(srv.env["VALHALLA_LEDGER_KEY_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	return key.Verifier
}

// TestLedgerEndpoints: an entry carries its seq once sealed; its proof
// checks against the signed checkpoint served as text/plain; consistency
// proofs join signed sizes; an unsealed entry's proof is a 404 saying so,
// with Retry-After; `valhalla ledger key` prints the key serve logged.
func TestLedgerEndpoints(t *testing.T) {
	t.Parallel()
	srv, pool := ledgerSetup(t)
	var ids []uuid.UUID
	// The empty tree is signed before anything is written.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := srv.do(t, "GET", "/ledger/checkpoint", "", nil)
		if resp.StatusCode == http.StatusOK {
			if cp, err := ledger.OpenCheckpoint(body, serverKey(t, srv)); err != nil || cp.Size != 0 {
				t.Fatalf("first checkpoint %+v: %v", cp, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint: %d %s", resp.StatusCode, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 3 {
		resp, err := srv.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{}, api.SystemLogCreate{Message: fmt.Sprint("m", i)})
		if err != nil || resp.JSON201 == nil {
			t.Fatalf("write: %v %s", err, resp.Body)
		}
		if resp.JSON201.Seq != nil {
			t.Errorf("a new entry has seq %d before it is sealed", *resp.JSON201.Seq)
		}
		ids = append(ids, resp.JSON201.Id)
	}
	size := waitSealed(t, pool)
	got, err := srv.Client.GetSystemLogWithResponse(ctx(t), ids[2], &api.GetSystemLogParams{})
	if err != nil || got.JSON200 == nil || got.JSON200.Seq == nil || *got.JSON200.Seq != 3 {
		t.Fatalf("third entry: %v %s, want seq 3", err, got.Body)
	}
	list, err := srv.Client.ListSystemLogsWithResponse(ctx(t), &api.ListSystemLogsParams{})
	if err != nil || list.JSON200 == nil || len(list.JSON200.Items) != 3 || list.JSON200.Items[0].Seq == nil || *list.JSON200.Items[0].Seq != 3 {
		t.Fatalf("list: %v %s, want the newest first with seq 3", err, list.Body)
	}

	key := serverKey(t, srv)
	if !strings.Contains(srv.Output.String(), key) {
		t.Errorf("serve did not log the verifier key %s", key)
	}
	var out syncBuffer
	if err := run(ctx(t), []string{"ledger", "key", "--ledger-key-file", srv.env["VALHALLA_LEDGER_KEY_FILE"]}, func(string) string { return "" }, &out, &out); err != nil || strings.TrimSpace(out.String()) != key {
		t.Errorf("valhalla ledger key: %v %q, want %q", err, out.String(), key)
	}

	resp, body := srv.do(t, "GET", "/ledger/checkpoint", "", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("checkpoint: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	cp, err := ledger.OpenCheckpoint(body, key)
	if err != nil || cp.Size != size {
		t.Fatalf("checkpoint %+v (%v), want size %d", cp, err, size)
	}
	proof, err := srv.Client.GetSystemLogProofWithResponse(ctx(t), ids[1], &api.GetSystemLogProofParams{})
	if err != nil || proof.JSON200 == nil {
		t.Fatalf("proof: %v %s", err, proof.Body)
	}
	p := proof.JSON200
	pcp, err := ledger.OpenCheckpoint([]byte(p.Checkpoint), key)
	if err != nil || pcp.Size != p.TreeSize || p.Seq != 2 {
		t.Fatalf("proof checkpoint %+v (%v), seq %d", pcp, err, p.Seq)
	}
	second, _ := srv.Client.GetSystemLogWithResponse(ctx(t), ids[1], &api.GetSystemLogParams{})
	leaf2, _ := ledger.LeafHash(entryFromAPI(*second.JSON200))
	if err := checkRecord(p.Proof, pcp, p.Seq, leaf2); err != nil {
		t.Errorf("inclusion proof: %v", err)
	}
	// A proof against an older signed size, and consistency from it.
	old, err := srv.Client.GetSystemLogProofWithResponse(ctx(t), ids[0], &api.GetSystemLogProofParams{TreeSize: ptr(int64(1))})
	if err != nil || old.JSON200 == nil || old.JSON200.TreeSize != 1 {
		// Size 1 is signed only if a pass sealed the first entry alone.
		if old.StatusCode() != http.StatusNotFound {
			t.Errorf("proof at size 1: %v %s", err, old.Body)
		}
	}
	cons, err := srv.Client.GetLedgerConsistencyWithResponse(ctx(t), &api.GetLedgerConsistencyParams{From: 0, To: size})
	if err != nil || cons.JSON200 == nil {
		t.Errorf("consistency 0..%d: %v %s", size, err, cons.Body)
	}
	resp, body = srv.do(t, "GET", "/metrics", "", nil)
	for _, want := range []string{"\nvalhalla_ledger_tree_size 3\n", "\nvalhalla_ledger_unsealed_entries 0\n",
		"\nvalhalla_ledger_seal_lag_seconds_count 3\n", "\nvalhalla_ledger_sequencer 1\n"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	// The largest after is an empty page, not an overflow.
	last, err := srv.Client.GetSystemLogFeedWithResponse(ctx(t), &api.GetSystemLogFeedParams{After: ptr(int64(math.MaxInt64))})
	if err != nil || last.JSON200 == nil || len(last.JSON200.Items) != 0 || last.JSON200.NextAfter != math.MaxInt64 {
		t.Errorf("feed after MaxInt64: %v %d %s", err, last.StatusCode(), last.Body)
	}
	bad, _ := srv.Client.GetLedgerConsistencyWithResponse(ctx(t), &api.GetLedgerConsistencyParams{From: size, To: 0})
	if bad.StatusCode() != http.StatusNotFound {
		t.Errorf("consistency %d..0: %d, want 404 (no such proof)", size, bad.StatusCode())
	}
}

// TestProofOfUnsealedEntry: on a server that never seals, an entry's
// proof is a 404 saying it is not sealed yet, with Retry-After, and an
// unknown id's says there is no such entry; /system-health degrades once
// the entry waits longer than 10 seal intervals, while readiness stays ok.
func TestProofOfUnsealedEntry(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "VALHALLA_SEAL_INTERVAL": "0"})
	resp, err := srv.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{}, api.SystemLogCreate{Message: "waiting"})
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("write: %v", err)
	}
	r, body := srv.do(t, "GET", "/system/logs/"+resp.JSON201.Id.String()+"/proof", "", nil)
	if r.StatusCode != http.StatusNotFound || r.Header.Get("Retry-After") == "" || !strings.Contains(problemOf(t, body).Detail, "not sealed yet") {
		t.Errorf("unsealed proof: %d Retry-After %q %s", r.StatusCode, r.Header.Get("Retry-After"), body)
	}
	r, body = srv.do(t, "GET", "/system/logs/"+uuid.NewString()+"/proof", "", nil)
	if r.StatusCode != http.StatusNotFound || r.Header.Get("Retry-After") != "" || !strings.Contains(problemOf(t, body).Detail, "no log entry") {
		t.Errorf("unknown proof: %d %s", r.StatusCode, body)
	}
	// 10 × the default 250 ms: the ledger check fails past 2.5 s.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, body := srv.do(t, "GET", "/system-health", "", nil)
		if r.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), `"ledger"`) {
			var hp api.HealthProblem
			_ = json.Unmarshal(body, &hp)
			for _, c := range hp.Checks {
				if c.Name == "ledger" && c.Status == api.CheckStatusFail && c.Error != nil && strings.Contains(*c.Error, "wait to be sealed") {
					goto degraded
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("health did not degrade: %d %s", r.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
degraded:
	if r, body := srv.do(t, "GET", "/system-health/ready", "", nil); r.StatusCode != http.StatusOK {
		t.Errorf("readiness failed with the sequencer behind: %d %s", r.StatusCode, body)
	}
}

func checkRecord(proof [][]byte, cp ledger.Checkpoint, seq int64, leaf [32]byte) error {
	return tlog.CheckRecord(hashesOf(proof), cp.Size, cp.Root, seq-1, leaf)
}

// TestFeedTakesEveryListFilter: the feed declares every filter of the
// listing with the same schema (the contract states them twice; this keeps
// the copies equal).
func TestFeedTakesEveryListFilter(t *testing.T) {
	t.Parallel()
	spec, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	params := func(path string) map[string]string {
		out := map[string]string{}
		for _, p := range spec.Paths.Find(path).Get.Parameters {
			schema, err := json.Marshal(p.Value.Schema)
			if err != nil {
				t.Fatal(err)
			}
			out[p.Value.In+" "+p.Value.Name] = string(schema)
		}
		return out
	}
	list, feed := params("/system/logs"), params("/system/logs/feed")
	paging := map[string]bool{"query limit": true, "query cursor": true, "query include_total": true, "query total_limit": true}
	for name, schema := range list {
		if paging[name] {
			continue
		}
		if got, ok := feed[name]; !ok || got != schema {
			t.Errorf("feed parameter %s: %s, want the listing's %s", name, got, schema)
		}
	}
}
