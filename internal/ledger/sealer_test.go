package ledger_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a migrated database with a store, a key and a reader.
type fixture struct {
	pool   *pgxpool.Pool
	store  *logstore.Store
	reader *ledger.Reader
	key    *ledger.Key
}

func setup(t *testing.T) *fixture {
	t.Helper()
	pool, err := database.Open(t.Context(), pgtest.NewDatabase(t), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := database.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	key, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), "ledger.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{pool: pool, store: logstore.New(pool), reader: ledger.NewReader(pool), key: key}
}

// startSealer runs a sealer until the test ends.
func (f *fixture) startSealer(t *testing.T, interval time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s := ledger.NewSealer(ledger.SealerOptions{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, f.pool.Config().ConnConfig.Copy())
		},
		Key: f.key, Interval: interval, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitSize polls until the tree holds n entries, failing after 30 s.
func (f *fixture) waitSize(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := f.reader.Stats(t.Context())
		if err == nil && s.TreeSize == n {
			if cp, err := f.reader.Latest(t.Context()); err == nil && cp.Size == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree size %d (err %v) after 30s, want %d", s.TreeSize, err, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sealedAsStored proves the entry id and wants its sealed leaf to be the
// hash of the entry as stored; it returns the proof and that hash.
func (f *fixture) sealedAsStored(t *testing.T, id uuid.UUID) (ledger.InclusionProof, tlog.Hash) {
	t.Helper()
	p, err := f.reader.ProveEntry(t.Context(), id, 0)
	if err != nil {
		t.Fatalf("prove %s: %v", id, err)
	}
	s, err := f.store.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := leafOf(s)
	if err != nil || leaf != p.LeafHash {
		t.Errorf("entry %s (%q, context as stored %s): sealed leaf %x, the stored entry hashes to %x (%v)",
			id, s.Message, s.Context, p.LeafHash, leaf, err)
	}
	return p, leaf
}

// leafOf is the leaf hash of the entry s, as the API returned or stored it.
func leafOf(s db.SystemLog) (tlog.Hash, error) {
	return ledger.LeafHash(ledger.Entry{ID: s.ID, Timestamp: s.Timestamp, Level: s.Level,
		Category: s.Category, Message: s.Message, CorrelationID: s.CorrelationID, UserID: s.UserID,
		TraceID: s.TraceID, Actor: s.Actor, Context: s.Context})
}

func entry(msg string) logstore.Entry {
	return logstore.Entry{Level: "INFO", Category: "ledger", Message: msg, CorrelationID: "c", Actor: "test",
		Context: []byte(`{"b": 2, "a": [1.0, "x"]}`)}
}

// TestSealProvesAndSigns: entries written singly and in batches are sealed
// with seqs 1..n, each leaf is the hash of the stored entry, every
// checkpoint is signed by the key, every entry's inclusion proof checks
// against it, and every signed size is consistent with the latest.
func TestSealProvesAndSigns(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.startSealer(t, 20*time.Millisecond)
	f.waitSize(t, 0)
	var ids []uuid.UUID
	for i := range 5 {
		e, err := f.store.Insert(t.Context(), entry(fmt.Sprint("single ", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
		batch, _, err := f.store.InsertBatch(t.Context(), nil, []logstore.Entry{entry("b1"), entry("b2"), entry("b3")})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batch {
			ids = append(ids, b.ID)
		}
		f.waitSize(t, int64(len(ids)))
	}
	cp, err := f.reader.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	opened, err := ledger.OpenCheckpoint([]byte(cp.Note), f.key.Verifier)
	if err != nil || opened.Size != int64(len(ids)) || opened.Root != cp.Root {
		t.Fatalf("checkpoint %+v (%v), want size %d root %x", opened, err, len(ids), cp.Root)
	}
	other, _ := ledger.GenerateKey("valhalla-ledger-other")
	otherKey, _ := ledger.ParseKey(other)
	if _, err := ledger.OpenCheckpoint([]byte(cp.Note), otherKey.Verifier); err == nil {
		t.Error("a checkpoint verified with another key")
	}
	seen := map[int64]bool{}
	q := db.New(f.pool)
	for _, id := range ids {
		p, leaf := f.sealedAsStored(t, id)
		seen[p.Seq] = true
		if err := tlog.CheckRecord(p.Proof, cp.Size, cp.Root, p.Seq-1, leaf); err != nil {
			t.Errorf("entry %s: inclusion proof: %v", id, err)
		}
		if len(p.Proof) > 6 {
			t.Errorf("proof of %d hashes in a tree of %d", len(p.Proof), cp.Size)
		}
	}
	for seq := int64(1); seq <= int64(len(ids)); seq++ {
		if !seen[seq] {
			t.Errorf("seq %d given to no entry", seq)
		}
	}
	// Every signed size is consistent with the latest.
	rows, err := f.pool.Query(t.Context(), "SELECT tree_size, root FROM ledger_checkpoints ORDER BY tree_size")
	if err != nil {
		t.Fatal(err)
	}
	type sized struct {
		Size int64
		Root []byte
	}
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sized])
	if err != nil || len(all) < 6 {
		t.Fatalf("%d checkpoints (%v), want one per seal that grew the tree and the empty one", len(all), err)
	}
	for _, c := range all {
		p, err := f.reader.Consistency(t.Context(), c.Size, cp.Size)
		if err != nil {
			t.Fatalf("consistency %d..%d: %v", c.Size, cp.Size, err)
		}
		if c.Size > 0 {
			if err := tlog.CheckTree(p.Proof, cp.Size, cp.Root, c.Size, tlog.Hash(c.Root)); err != nil {
				t.Errorf("consistency %d..%d: %v", c.Size, cp.Size, err)
			}
		}
	}
	if n, err := q.TreeSize(t.Context()); err != nil || n != int64(len(ids)) {
		t.Errorf("tree size %d (%v), want %d", n, err, len(ids))
	}
}

// TestLateCommitGetsLaterSeq: an entry whose transaction began first but
// commits after another's gets the larger seq, and is not sealed while its
// transaction is open.
func TestLateCommitGetsLaterSeq(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.startSealer(t, 20*time.Millisecond)
	f.waitSize(t, 0)
	ctx := t.Context()
	late, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = late.Rollback(context.Background()) }()
	lateID := uuid.Must(uuid.NewV7())
	var lateTx int64
	if err := late.QueryRow(ctx, `INSERT INTO ledger_queue (log_ids, log_timestamps, leaf_hashes)
		VALUES (ARRAY[$1::uuid], ARRAY[now()], ARRAY[NULL::bytea]) RETURNING id`, lateID).Scan(&lateTx); err != nil {
		t.Fatal(err)
	}
	if _, err := late.Exec(ctx, `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, actor, ledger_tx)
		VALUES ($1, now(), 'INFO', 'ledger', 'late', 'c', 'test', $2)`, lateID, lateTx); err != nil {
		t.Fatal(err)
	}
	early, err := f.store.Insert(ctx, entry("early"))
	if err != nil {
		t.Fatal(err)
	}
	f.waitSize(t, 1)
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	f.waitSize(t, 2)
	seals, err := f.store.Seals(ctx, []db.SystemLog{early, {ID: lateID, LedgerTx: &lateTx}})
	if err != nil {
		t.Fatal(err)
	}
	if seals[early.ID].Seq != 1 || seals[lateID].Seq != 2 {
		t.Errorf("early (committed first) has seq %d, late %d; want 1 and 2", seals[early.ID].Seq, seals[lateID].Seq)
	}
}

// TestBacklogSealsInSteps: a backlog queued before the sequencer starts is
// sealed in commit order, with checkpoints published along the way rather
// than only once it is all sealed, each consistent with the final tree.
func TestBacklogSealsInSteps(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var ids []uuid.UUID
	for b := range 12 {
		es := make([]logstore.Entry, 1000)
		for i := range es {
			es[i] = entry(fmt.Sprint("backlog ", b, " ", i))
		}
		stored, _, err := f.store.InsertBatch(t.Context(), nil, es)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stored {
			ids = append(ids, s.ID)
		}
	}
	f.startSealer(t, time.Millisecond)
	f.waitSize(t, int64(len(ids)))
	rows, err := f.pool.Query(t.Context(), "SELECT u.id FROM ledger_blocks b CROSS JOIN LATERAL unnest(b.log_ids) WITH ORDINALITY AS u (id, ord) ORDER BY b.first_seq, u.ord")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(ids) {
		t.Fatalf("%d entries sealed, want %d", len(sealed), len(ids))
	}
	for i := range ids {
		if sealed[i] != ids[i] {
			t.Fatalf("seq %d is %s, want %s (the order the batches committed in)", i+1, sealed[i], ids[i])
		}
	}
	cp, err := f.reader.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err = f.pool.Query(t.Context(), "SELECT tree_size, root FROM ledger_checkpoints WHERE tree_size > 0 AND tree_size < $1", len(ids))
	if err != nil {
		t.Fatal(err)
	}
	type sized struct {
		Size int64
		Root []byte
	}
	steps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sized])
	if err != nil || len(steps) == 0 {
		t.Fatalf("%d checkpoints before the backlog was sealed (%v), want some", len(steps), err)
	}
	for _, c := range steps {
		p, err := f.reader.Consistency(t.Context(), c.Size, cp.Size)
		if err != nil {
			t.Fatalf("consistency %d..%d: %v", c.Size, cp.Size, err)
		}
		if err := tlog.CheckTree(p.Proof, cp.Size, cp.Root, c.Size, tlog.Hash(c.Root)); err != nil {
			t.Errorf("consistency %d..%d: %v", c.Size, cp.Size, err)
		}
	}
}

// TestPassWaitsWhileADropHoldsThePassLock: retention holds the pass lock
// exclusively while it detaches a partition; a seal pass waits for it
// before it reads system_logs, and seals once the drop is done.
func TestPassWaitsWhileADropHoldsThePassLock(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := t.Context()
	drop, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer drop.Rollback(context.Background())
	if _, err := drop.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ledger.PassLock); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Insert(ctx, entry("during a drop")); err != nil {
		t.Fatal(err)
	}
	f.startSealer(t, 20*time.Millisecond)
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting bool
		if err := f.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
  AND NOT granted AND mode = 'ShareLock'
  AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1)`,
			ledger.PassLock).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no seal pass came to wait for the pass lock a drop holds")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s, err := f.reader.Stats(ctx); err != nil || s.TreeSize != 0 {
		t.Fatalf("tree size %d (err %v) while the drop holds the pass lock, want 0", s.TreeSize, err)
	}
	if err := drop.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	f.waitSize(t, 1)
}

// TestQueuedLeafIsTheStoredEntrysHash: the writer queues each entry with
// the leaf hash of the entry as PostgreSQL stores it, whatever the JSON of
// its context looked like (jsonb rewrites numbers, escapes, duplicate and
// unordered names); a context only the stored row can hash (a number no
// double holds, which jsonb writes out in full) is queued without one and
// sealed from the stored row. Every sealed leaf is the stored entry's hash.
func TestQueuedLeafIsTheStoredEntrysHash(t *testing.T) {
	t.Parallel()
	f := setup(t)
	contexts := map[string]bool{ // the context: whether its writer can hash it
		`{}`: true,
		` { "b" : 1.0 , "a" : [ 1E5, -0, 0.1e-5, 1e-400 ] } `:                              true,
		`{"big":12345678901234567890123456789,"pi":3.14159265358979323846264338327950288}`: true,
		`{"s":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t \u001f \u007f \u2028"}`:       true,
		`{"dup":1,"dup":{"z":[],"a":null},"x":true,"y":false}`:                             true,
		`{"é":1,"e":2,"\ud83d\ude00":3,"ﬀ":4,"10":5,"9":6}`:                                true,
		`{"deep":[[[[[[[[{"k":[1,2,{"m":"n"}]}]]]]]]]]}`:                                   true,
		`{"huge":1e400}`:            false,
		`{"tiny":-1.5E+309,"ok":1}`: false,
	}
	var entries []logstore.Entry
	user, trace := "user-1", "0af7651916cd43dd8448eb211c80319c"
	for c := range contexts {
		e := entry("leaf " + c)
		e.Context = []byte(c)
		entries = append(entries, e)
		e.UserID, e.TraceID = &user, &trace
		entries = append(entries, e)
	}
	want := map[uuid.UUID]bool{}
	for i, e := range entries {
		if i%2 == 0 {
			s, err := f.store.Insert(t.Context(), e)
			if err != nil {
				t.Fatalf("insert %s: %v", e.Context, err)
			}
			want[s.ID] = contexts[string(e.Context)]
			continue
		}
		stored, _, err := f.store.InsertBatch(t.Context(), nil, []logstore.Entry{e})
		if err != nil {
			t.Fatalf("insert batch %s: %v", e.Context, err)
		}
		want[stored[0].ID] = contexts[string(e.Context)]
	}
	rows, err := f.pool.Query(t.Context(), "SELECT u.id, u.leaf IS NOT NULL FROM ledger_queue q CROSS JOIN LATERAL unnest(q.log_ids, q.leaf_hashes) AS u (id, leaf)")
	if err != nil {
		t.Fatal(err)
	}
	type queuedRow struct {
		ID     uuid.UUID
		Hashed bool
	}
	queued, err := pgx.CollectRows(rows, pgx.RowToStructByPos[queuedRow])
	if err != nil || len(queued) != len(want) {
		t.Fatalf("%d entries queued (%v), want %d", len(queued), err, len(want))
	}
	for _, q := range queued {
		if q.Hashed != want[q.ID] {
			t.Errorf("entry %s queued with a leaf hash: %v, want %v", q.ID, q.Hashed, want[q.ID])
		}
	}
	f.startSealer(t, 10*time.Millisecond)
	f.waitSize(t, int64(len(want)))
	for id := range want {
		f.sealedAsStored(t, id)
	}
}

// TestChangeBeforeSealIsCaught: an entry changed by SQL after its write
// committed but before it was sealed is sealed as it was acknowledged, so
// the tree no longer matches the row (valhalla verify names it altered);
// one deleted before its seal is sealed all the same (verify names it
// missing).
func TestChangeBeforeSealIsCaught(t *testing.T) {
	t.Parallel()
	f := setup(t)
	changed, err := f.store.Insert(t.Context(), entry("as written"))
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := f.store.Insert(t.Context(), entry("deleted"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(t.Context(), "UPDATE system_logs SET message = 'rewritten' WHERE id = $1", changed.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(t.Context(), "DELETE FROM system_logs WHERE id = $1", deleted.ID); err != nil {
		t.Fatal(err)
	}
	f.startSealer(t, 10*time.Millisecond)
	f.waitSize(t, 2)
	p, err := f.reader.ProveEntry(t.Context(), changed.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	acknowledged, err := leafOf(changed)
	if err != nil || p.LeafHash != acknowledged {
		t.Errorf("sealed leaf %x, want the acknowledged entry's %x (%v)", p.LeafHash, acknowledged, err)
	}
	s, err := f.store.Get(t.Context(), changed.ID)
	if err != nil {
		t.Fatal(err)
	}
	rewritten, _ := leafOf(s)
	if s.Message != "rewritten" || rewritten == p.LeafHash {
		t.Errorf("the rewritten row (%q) hashes to the sealed leaf", s.Message)
	}
	page, err := f.store.Feed(t.Context(), logstore.Filter{}, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := leafOf(deleted)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Missing) != 1 || page.Missing[0].ID != deleted.ID || !bytes.Equal(page.Missing[0].LeafHash, gone[:]) {
		t.Errorf("the feed's missing leaves %+v, want the deleted entry's, as acknowledged (%x)", page.Missing, gone)
	}
}

// TestMalformedQueuedLeafIsHashedFromTheRow: a queue row whose leaf hash
// is not one (only SQL can write it) does not stop sealing: the entry is
// hashed from its stored row, and the entries after it are sealed too.
func TestMalformedQueuedLeafIsHashedFromTheRow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := uuid.Must(uuid.NewV7())
	if _, err := f.pool.Exec(t.Context(), `WITH q AS (
		INSERT INTO ledger_queue (log_ids, log_timestamps, leaf_hashes)
		VALUES (ARRAY[$1::uuid], ARRAY[now()], ARRAY['\x0102'::bytea]) RETURNING id)
		INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, actor, ledger_tx)
		SELECT $1, now(), 'INFO', 'ledger', 'by SQL', 'c', 'test', id FROM q`, id); err != nil {
		t.Fatal(err)
	}
	after, err := f.store.Insert(t.Context(), entry("after it"))
	if err != nil {
		t.Fatal(err)
	}
	f.startSealer(t, 10*time.Millisecond)
	f.waitSize(t, 2)
	for _, id := range []uuid.UUID{id, after.ID} {
		f.sealedAsStored(t, id)
	}
}
