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

// hashStore is a tlog.HashReader over ledger_blocks: the stored hash
// (level, k) was written with leaf seq (k+1)<<level, so it is in the block
// that holds that leaf, at its index's offset from the block's first. It
// remembers what it read and what a seal pass added.
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
	var missing, seqs []int64
	asked := map[int64]bool{}
	for i, idx := range indexes {
		if v, ok := h.cache[idx]; ok {
			out[i] = v
			continue
		}
		if !asked[idx] {
			asked[idx] = true
			level, k := tlog.SplitStoredHashIndex(idx)
			missing = append(missing, idx)
			seqs = append(seqs, (k+1)<<level)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := h.q.StoredHashes(h.ctx, db.StoredHashesParams{Indexes: missing, Seqs: seqs})
	if err != nil {
		return nil, fmt.Errorf("read stored hashes: %w", err)
	}
	found := make(map[int64]tlog.Hash, len(rows))
	for _, r := range rows {
		if r.Seq <= r.LastSeq && len(r.Hash) == tlog.HashSize {
			found[r.Idx] = tlog.Hash(r.Hash)
		}
	}
	for i, idx := range indexes {
		if _, ok := h.cache[idx]; ok {
			continue
		}
		v, ok := found[idx]
		if !ok {
			level, k := tlog.SplitStoredHashIndex(idx)
			return nil, fmt.Errorf("%w: no hash at level %d for leaf %d", ErrTreeDamaged, level, (k+1)<<level)
		}
		out[i] = v
	}
	for idx, v := range found {
		h.cache[idx] = v
	}
	return out, nil
}
