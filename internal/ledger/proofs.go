package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/db"
)

// Errors the Reader returns, wrapped; test with errors.Is.
var (
	// ErrNotSealed means the entry is stored (or queued) but not sealed yet.
	ErrNotSealed = errors.New("entry is not sealed yet")
	// ErrNoEntry means no entry has the id, sealed or not.
	ErrNoEntry = errors.New("no log entry has this id")
	// ErrNoCheckpoint means no checkpoint was signed for the tree size.
	ErrNoCheckpoint = errors.New("no checkpoint of this tree size")
	// ErrBadRange means a proof was asked between sizes it cannot join.
	ErrBadRange = errors.New("sizes out of range")
)

// Reader serves checkpoints and proofs from the stored tree.
type Reader struct {
	pool *pgxpool.Pool
	q    *db.Queries
}

// NewReader returns a reader over pool.
func NewReader(pool *pgxpool.Pool) *Reader {
	return &Reader{pool: pool, q: db.New(pool)}
}

// StoredCheckpoint is a signed checkpoint as stored.
type StoredCheckpoint struct {
	Size int64
	Root tlog.Hash
	// Note is the signed note, as served.
	Note string
	// SignedAt is when the sequencer signed it (not part of the note).
	SignedAt time.Time
}

func checkpointFromDB(c db.LedgerCheckpoint) StoredCheckpoint {
	return StoredCheckpoint{Size: c.TreeSize, Root: tlog.Hash(c.Root), Note: c.Note, SignedAt: c.SignedAt}
}

// Latest returns the checkpoint of the largest tree, or ErrNoCheckpoint
// (wrapped) before the sequencer signed one.
func (r *Reader) Latest(ctx context.Context) (StoredCheckpoint, error) {
	c, err := r.q.LatestCheckpoint(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		return StoredCheckpoint{}, fmt.Errorf("latest checkpoint: %w", ErrNoCheckpoint)
	}
	if err != nil {
		return StoredCheckpoint{}, fmt.Errorf("latest checkpoint: %w", err)
	}
	return checkpointFromDB(c), nil
}

// checkpoint returns the checkpoint of size, or the latest when size is 0.
func (r *Reader) checkpoint(ctx context.Context, q *db.Queries, size int64) (StoredCheckpoint, error) {
	if size == 0 {
		c, err := q.LatestCheckpoint(ctx)
		if errors.Is(err, pgx.ErrNoRows) {
			return StoredCheckpoint{}, fmt.Errorf("latest checkpoint: %w", ErrNoCheckpoint)
		}
		if err != nil {
			return StoredCheckpoint{}, fmt.Errorf("latest checkpoint: %w", err)
		}
		return checkpointFromDB(c), nil
	}
	c, err := q.CheckpointOfSize(ctx, size)
	if errors.Is(err, pgx.ErrNoRows) {
		return StoredCheckpoint{}, fmt.Errorf("checkpoint of size %d: %w", size, ErrNoCheckpoint)
	}
	if err != nil {
		return StoredCheckpoint{}, fmt.Errorf("checkpoint of size %d: %w", size, err)
	}
	return checkpointFromDB(c), nil
}

// InclusionProof proves that leaf Seq is in the tree of Checkpoint.
type InclusionProof struct {
	Seq        int64
	LeafHash   tlog.Hash
	Proof      tlog.RecordProof
	Checkpoint StoredCheckpoint
}

// ProveEntry proves entry id's inclusion in the tree of treeSize (0: the
// latest checkpoint's). It returns ErrNotSealed, ErrNoEntry,
// ErrNoCheckpoint or ErrBadRange (the tree is older than the entry),
// wrapped.
func (r *Reader) ProveEntry(ctx context.Context, id uuid.UUID, treeSize int64) (InclusionProof, error) {
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove entry: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := db.New(tx)
	seq, err := sealOf(ctx, q, id)
	if errors.Is(err, pgx.ErrNoRows) {
		queued, qerr := q.IsQueued(ctx, id)
		if qerr != nil {
			return InclusionProof{}, fmt.Errorf("prove entry: %w", qerr)
		}
		if queued {
			return InclusionProof{}, fmt.Errorf("prove entry %s: %w", id, ErrNotSealed)
		}
		return InclusionProof{}, fmt.Errorf("prove entry %s: %w", id, ErrNoEntry)
	}
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove entry: %w", err)
	}
	cp, err := r.checkpoint(ctx, q, treeSize)
	if err != nil {
		return InclusionProof{}, err
	}
	if cp.Size < seq {
		if treeSize == 0 {
			return InclusionProof{}, fmt.Errorf("prove entry %s: %w", id, ErrNotSealed)
		}
		return InclusionProof{}, fmt.Errorf("prove entry %s (seq %d) in a tree of %d: %w", id, seq, cp.Size, ErrBadRange)
	}
	hashes := newHashStore(q).withContext(ctx)
	leaf, err := hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, seq-1)})
	if err != nil {
		return InclusionProof{}, err
	}
	proof, err := tlog.ProveRecord(cp.Size, seq-1, hashes)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove entry %s: %w", id, err)
	}
	return InclusionProof{Seq: seq, LeafHash: leaf[0], Proof: proof, Checkpoint: cp}, nil
}

// ConsistencyProof proves that the tree of size From is a prefix of the
// tree of size To.
type ConsistencyProof struct {
	From, To int64
	Proof    tlog.TreeProof
}

// Consistency proves the tree of size from is a prefix of the tree of
// size to. Both must be signed sizes. It returns ErrBadRange or
// ErrNoCheckpoint (wrapped).
func (r *Reader) Consistency(ctx context.Context, from, to int64) (ConsistencyProof, error) {
	if from < 0 || from > to {
		return ConsistencyProof{}, fmt.Errorf("consistency %d..%d: %w", from, to, ErrBadRange)
	}
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := db.New(tx)
	for _, size := range []int64{from, to} {
		if _, err := q.CheckpointOfSize(ctx, size); errors.Is(err, pgx.ErrNoRows) {
			return ConsistencyProof{}, fmt.Errorf("checkpoint of size %d: %w", size, ErrNoCheckpoint)
		} else if err != nil {
			return ConsistencyProof{}, fmt.Errorf("consistency: %w", err)
		}
	}
	if from == 0 {
		// Every tree extends the empty one; the proof is empty.
		return ConsistencyProof{From: from, To: to, Proof: tlog.TreeProof{}}, nil
	}
	proof, err := tlog.ProveTree(to, from, newHashStore(q).withContext(ctx))
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency %d..%d: %w", from, to, err)
	}
	return ConsistencyProof{From: from, To: to, Proof: proof}, nil
}

// Stats describe the ledger's progress.
type Stats struct {
	// TreeSize is the number of sealed entries.
	TreeSize int64
	// Unsealed counts entries waiting to be sealed.
	Unsealed int64
	// OldestUnsealed is how long the oldest waiting entry has waited.
	OldestUnsealed time.Duration
}

// Stats reads the ledger's progress, or returns an error.
func (r *Reader) Stats(ctx context.Context) (Stats, error) {
	size, err := r.q.TreeSize(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("ledger stats: %w", err)
	}
	q, err := r.q.QueueStats(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("ledger stats: %w", err)
	}
	return Stats{TreeSize: size, Unsealed: q.Waiting, OldestUnsealed: time.Duration(q.OldestAgeSeconds * float64(time.Second))}, nil
}

// ErrLagging means entries wait longer than the ledger check allows.
var ErrLagging = errors.New("entries wait too long to be sealed")

// HealthCheck returns a check that fails when an entry has waited more
// than maxLag to be sealed (the sequencer is down or behind).
func (r *Reader) HealthCheck(maxLag time.Duration) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		s, err := r.Stats(ctx)
		if err != nil {
			return err
		}
		if s.OldestUnsealed > maxLag {
			return lagError{fmt.Sprintf("%d entries wait to be sealed, the oldest for %s (limit %s)",
				s.Unsealed, s.OldestUnsealed.Round(time.Millisecond), maxLag)}
		}
		return nil
	}
}

// lagError is ErrLagging with a summary safe to show to anyone.
type lagError struct{ summary string }

func (e lagError) Error() string { return ErrLagging.Error() + ": " + e.summary }

// Safe is the summary a health check may show.
func (e lagError) Safe() string { return e.summary }

func (e lagError) Unwrap() error { return ErrLagging }

// IDSlack bounds how far an entry's timestamp may be from the time its
// UUIDv7 id carries, for entries the API stored: the id is minted right
// after the timestamp is taken, and its clock may run a little ahead when
// many ids share a millisecond. A lookup by id reads the partitions of
// IDTime ± IDSlack first.
const IDSlack = time.Hour

// IDTime returns the time a UUIDv7 id carries (its first 48 bits, Unix
// milliseconds), and false for an id of another version.
func IDTime(id uuid.UUID) (time.Time, bool) {
	if id.Version() != 7 {
		return time.Time{}, false
	}
	ms := int64(id[0])<<40 | int64(id[1])<<32 | int64(id[2])<<24 | int64(id[3])<<16 | int64(id[4])<<8 | int64(id[5])
	return time.UnixMilli(ms).UTC(), true
}

// sealOf returns the seq of the entry id, or pgx.ErrNoRows when it has
// none: found through its stored row (in the partition its id's time names,
// else in any), else, for an entry retention dropped, in
// ledger_retired_ids.
func sealOf(ctx context.Context, q *db.Queries, id uuid.UUID) (int64, error) {
	if t, ok := IDTime(id); ok {
		from, to := t.Add(-IDSlack), t.Add(IDSlack)
		seq, err := q.SealOf(ctx, db.SealOfParams{ID: id, From: &from, To: &to})
		if !errors.Is(err, pgx.ErrNoRows) {
			return seq, err
		}
	}
	seq, err := q.SealOf(ctx, db.SealOfParams{ID: id})
	if !errors.Is(err, pgx.ErrNoRows) {
		return seq, err
	}
	return q.RetiredSealOf(ctx, id)
}
