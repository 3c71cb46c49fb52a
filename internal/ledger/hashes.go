package ledger

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/db"
)

// ErrTreeDamaged means a stored hash the tree needs is missing or malformed.
var ErrTreeDamaged = errors.New("the stored tree is damaged")

// hashStore is a tlog.HashReader over ledger_entries: the stored hash
// (level, k) was written with leaf seq (k+1)<<level, at offset level, since
// tlog.StoredHashes returns the leaf hash and then one hash per level up.
// It remembers what it read and what a seal pass added.
type hashStore struct {
	ctx   context.Context
	q     *db.Queries
	cache map[int64]tlog.Hash
}

func newHashStore(q *db.Queries) *hashStore {
	return &hashStore{ctx: context.Background(), q: q, cache: map[int64]tlog.Hash{}}
}

// withContext returns h reading with ctx.
func (h *hashStore) withContext(ctx context.Context) *hashStore {
	h.ctx = ctx
	return h
}

// add records the hashes StoredHashes returned for record n.
func (h *hashStore) add(n int64, stored []tlog.Hash) {
	first := tlog.StoredHashIndex(0, n)
	for i, s := range stored {
		h.cache[first+int64(i)] = s
	}
}

// keepFrontier forgets every remembered hash but the roots of the complete
// subtrees along the right edge of a tree of size n: all that appending to
// it and hashing it need.
func (h *hashStore) keepFrontier(n int64) {
	keep := make(map[int64]tlog.Hash)
	for _, i := range frontier(n) {
		if v, ok := h.cache[i]; ok {
			keep[i] = v
		}
	}
	h.cache = keep
}

// frontier returns the stored indexes of the roots of the complete
// subtrees a tree of size n splits into, largest first.
func frontier(n int64) []int64 {
	var out []int64
	lo := int64(0)
	for level := 62; level >= 0; level-- {
		if n&(1<<level) != 0 {
			out = append(out, tlog.StoredHashIndex(level, lo>>level))
			lo += 1 << level
		}
	}
	return out
}

// ReadHashes implements tlog.HashReader.
func (h *hashStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	seqs := map[int64]bool{}
	for i, idx := range indexes {
		if v, ok := h.cache[idx]; ok {
			out[i] = v
			continue
		}
		missing = append(missing, int64(i))
		level, k := tlog.SplitStoredHashIndex(idx)
		seqs[(k+1)<<level] = true
	}
	if len(missing) == 0 {
		return out, nil
	}
	list := make([]int64, 0, len(seqs))
	for s := range seqs {
		list = append(list, s)
	}
	rows, err := h.q.StoredHashRows(h.ctx, list)
	if err != nil {
		return nil, fmt.Errorf("read stored hashes: %w", err)
	}
	bySeq := make(map[int64][]byte, len(rows))
	for _, r := range rows {
		bySeq[r.Seq] = r.Hashes
	}
	for _, i := range missing {
		idx := indexes[i]
		level, k := tlog.SplitStoredHashIndex(idx)
		seq := (k + 1) << level
		b := bySeq[seq]
		off := level * tlog.HashSize
		if len(b) < off+tlog.HashSize {
			return nil, fmt.Errorf("%w: no hash at level %d for leaf %d", ErrTreeDamaged, level, seq)
		}
		out[i] = tlog.Hash(b[off : off+tlog.HashSize])
		h.cache[idx] = out[i]
	}
	return out, nil
}
