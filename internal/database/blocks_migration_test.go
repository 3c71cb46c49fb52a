package database

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// hashMap is a tlog.HashReader over hashes kept in memory.
type hashMap map[int64]tlog.Hash

func (m hashMap) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		out[i] = m[idx]
	}
	return out, nil
}

// TestLeavesMigrateToBlocks: migration 00080 turns a tree stored a leaf a
// row into blocks without changing it: the same seqs, ids and stored
// hashes (every one of them read back through the proofs' query), each
// sealed entry finding its seq through its ledger_tx, a queued one
// pointing at its queue row; and back down again, row for row.
func TestLeavesMigrateToBlocks(t *testing.T) {
	ctx := t.Context()
	pool, err := Open(ctx, pgtest.NewDatabase(t), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	p, sqlDB, err := provider(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	if _, err := p.UpTo(ctx, 72); err != nil {
		t.Fatal(err)
	}
	// 2,345 sealed leaves: two whole blocks of 1000 and a part of one.
	const n = 2345
	now := time.Now().UTC().Truncate(time.Microsecond)
	stored := hashMap{}
	type leaf struct {
		Seq    int64
		ID     uuid.UUID
		Hashes []byte
	}
	leaves := make([]leaf, n)
	for i := range leaves {
		id := uuid.Must(uuid.NewV7())
		hs, err := tlog.StoredHashes(int64(i), id[:], stored)
		if err != nil {
			t.Fatal(err)
		}
		var b []byte
		for j, h := range hs {
			stored[tlog.StoredHashIndex(0, int64(i))+int64(j)] = h
			b = append(b, h[:]...)
		}
		leaves[i] = leaf{Seq: int64(i + 1), ID: id, Hashes: b}
	}
	batch := &pgx.Batch{}
	for _, l := range leaves {
		batch.Queue(`INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, actor)
			VALUES ($1, $2, 'INFO', 'c', 'm', 'c', 'test')`, l.ID, now)
		batch.Queue(`INSERT INTO ledger_entries (seq, log_id, hashes, sealed_at, log_timestamp) VALUES ($1, $2, $3, $4, $4)`,
			l.Seq, l.ID, l.Hashes, now)
	}
	queued := uuid.Must(uuid.NewV7())
	batch.Queue(`INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, actor)
		VALUES ($1, $2, 'INFO', 'c', 'queued', 'c', 'test')`, queued, now)
	batch.Queue(`INSERT INTO ledger_queue (log_ids, log_timestamps, leaf_hashes) VALUES (ARRAY[$1::uuid], ARRAY[$2::timestamptz], ARRAY[NULL::bytea])`, queued, now)
	if err := pool.SendBatch(ctx, batch).Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	q := db.New(pool)
	if size, err := q.TreeSize(ctx); err != nil || size != n {
		t.Fatalf("tree size %d (%v), want %d", size, err, n)
	}
	indexes := make([]int64, 0, len(stored))
	seqs := make([]int64, 0, len(stored))
	for idx := range stored {
		level, k := tlog.SplitStoredHashIndex(idx)
		indexes, seqs = append(indexes, idx), append(seqs, (k+1)<<level)
	}
	got, err := q.StoredHashes(ctx, db.StoredHashesParams{Indexes: indexes, Seqs: seqs})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(stored) {
		t.Fatalf("%d stored hashes read back, want %d", len(got), len(stored))
	}
	for _, r := range got {
		if want := stored[r.Idx]; !bytes.Equal(r.Hash, want[:]) || r.Seq > r.LastSeq {
			t.Fatalf("stored hash %d: %x (block to %d), want %x", r.Idx, r.Hash, r.LastSeq, want)
		}
	}
	for _, l := range []leaf{leaves[0], leaves[999], leaves[1000], leaves[n-1]} {
		if seq, err := q.SealOf(ctx, db.SealOfParams{ID: l.ID}); err != nil || seq != l.Seq {
			t.Errorf("entry %s: seq %d (%v), want %d", l.ID, seq, err, l.Seq)
		}
	}
	var pointsAtQueue bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM system_logs s JOIN ledger_queue q ON q.id = s.ledger_tx WHERE s.id = $1)`,
		queued).Scan(&pointsAtQueue); err != nil || !pointsAtQueue {
		t.Errorf("the queued entry does not point at its queue row (%v)", err)
	}

	if _, err := p.DownTo(ctx, 72); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT seq, log_id, hashes FROM ledger_entries ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	back, err := pgx.CollectRows(rows, pgx.RowToStructByPos[leaf])
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != n {
		t.Fatalf("%d leaves after migrating down, want %d", len(back), n)
	}
	for i, l := range back {
		if l.Seq != leaves[i].Seq || l.ID != leaves[i].ID || !bytes.Equal(l.Hashes, leaves[i].Hashes) {
			t.Fatalf("leaf %d after migrating down: %d %s %x, want %d %s %x", i, l.Seq, l.ID, l.Hashes, leaves[i].Seq, leaves[i].ID, leaves[i].Hashes)
		}
	}
}
