package database

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/db"
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
	pool, p := migratedTo(t, 72)
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

// TestRetiredIDsBackfill: migration 00081 fills ledger_retired_ids with the
// leaves of the retention records written before it (and only those), by
// id, across blocks.
func TestRetiredIDsBackfill(t *testing.T) {
	ctx := t.Context()
	pool, p := migratedTo(t, 80)
	// Leaves 1-3 in one block, 4-6 in another; seqs 2-3 and 5 retired.
	ids := make([]uuid.UUID, 6)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	now := time.Now().UTC()
	zero := make([]byte, 32)
	for i, b := range [][]uuid.UUID{ids[:3], ids[3:]} {
		first := int64(3*i + 1)
		if _, err := pool.Exec(ctx, `INSERT INTO ledger_blocks (first_seq, last_seq, first_index, tx, log_ids, log_timestamps, leaf_hashes, hashes, sealed_at)
			VALUES ($1, $2, 0, $3, $4, ARRAY[$5::timestamptz, $5, $5], ARRAY[$6::bytea, $6, $6], $7, $5)`,
			first, first+2, -first, b, now, zero, bytes.Repeat(zero, 3)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO ledger_retirements (partition, range_from, range_to, policy, seq_ranges, retired, held, retired_at, note)
		VALUES ('p', $1, $1, 'retention 30d', '2-3,5-5', 3, 0, $1, 'n')`, now); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	q := db.New(pool)
	for i, id := range ids {
		seq, err := q.RetiredSealOf(ctx, id)
		retired := i == 1 || i == 2 || i == 4
		switch {
		case retired && (err != nil || seq != int64(i+1)):
			t.Errorf("retired leaf %d: seq %d (%v), want %d", i+1, seq, err, i+1)
		case !retired && !errors.Is(err, pgx.ErrNoRows):
			t.Errorf("leaf %d, not retired, is in ledger_retired_ids (seq %d, %v)", i+1, seq, err)
		}
	}
}
