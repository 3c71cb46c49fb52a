package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/db"
)

// DefaultSealInterval is how often the sequencer seals by default.
const DefaultSealInterval = 250 * time.Millisecond

// lockKey is the session advisory lock the sequencer holds: whoever holds
// it on the database is the one sequencer.
const lockKey int64 = 0x76_68_6c_5f_6c_65_64 // "vhl_led"

// takeoverPoll is how often a server that is not the sequencer tries to
// become it. A sequencer killed with kill -9 loses its connection, and so
// the lock, at once, so another server takes over within about this long.
const takeoverPoll = time.Second

// fetchSize is how many queued entries a seal pass reads at once.
const fetchSize = 2000

// SealerOptions configure a Sealer.
type SealerOptions struct {
	// Connect opens the dedicated connection that holds the lock and runs
	// every seal pass.
	Connect func(ctx context.Context) (*pgx.Conn, error)
	Key     *Key
	// Interval is the time between seal passes.
	Interval time.Duration
	Logger   *slog.Logger
	// Sealed, when set, is told after each pass that grew the tree how
	// many entries it sealed, the new tree size and each entry's lag (from
	// its timestamp to the commit of its seal).
	Sealed func(entries int, treeSize int64, lags []time.Duration)
	// Leading, when set, is told when this server becomes the sequencer
	// (true) and when it stops being it (false).
	Leading func(bool)
}

// Sealer is the sequencer. Run it on every server: one of them, the
// holder of the ledger's advisory lock, seals; the others stand by.
type Sealer struct {
	opts SealerOptions
}

// NewSealer returns a sealer; Run starts it.
func NewSealer(opts SealerOptions) *Sealer {
	if opts.Interval <= 0 {
		opts.Interval = DefaultSealInterval
	}
	return &Sealer{opts: opts}
}

// Run competes for the sequencer's lock and, while it holds it, seals
// every interval, until ctx is done. A lost connection makes it compete
// again; errors are logged.
func (s *Sealer) Run(ctx context.Context) {
	log := s.opts.Logger
	for ctx.Err() == nil {
		conn, err := s.opts.Connect(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("ledger: cannot connect to compete for the sequencer", "error", err)
			}
			wait(ctx, takeoverPoll)
			continue
		}
		err = s.compete(ctx, conn)
		if err != nil && ctx.Err() == nil {
			log.Warn("ledger: sequencer connection lost", "error", err)
		}
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = conn.Close(closeCtx) // releases the lock
		cancel()
		wait(ctx, takeoverPoll)
	}
}

// compete tries for the lock every takeoverPoll and, once it has it, leads
// until ctx is done or the connection fails.
func (s *Sealer) compete(ctx context.Context, conn *pgx.Conn) error {
	for {
		var locked bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockKey).Scan(&locked); err != nil {
			return fmt.Errorf("try the sequencer lock: %w", err)
		}
		if locked {
			return s.lead(ctx, conn)
		}
		if !wait(ctx, takeoverPoll) {
			return nil
		}
	}
}

// lead seals every interval on conn, which holds the lock.
func (s *Sealer) lead(ctx context.Context, conn *pgx.Conn) error {
	log := s.opts.Logger
	if s.opts.Leading != nil {
		s.opts.Leading(true)
		defer s.opts.Leading(false)
	}
	var commitTS bool
	if err := conn.QueryRow(ctx, "SELECT current_setting('track_commit_timestamp') = 'on'").Scan(&commitTS); err != nil {
		return fmt.Errorf("read track_commit_timestamp: %w", err)
	}
	log.Info("ledger: this server is the sequencer", "seal_interval", s.opts.Interval, "commit_timestamps", commitTS)
	if err := s.firstCheckpoint(ctx, conn); err != nil {
		return err
	}
	order := orderByXID
	if commitTS {
		order = orderByCommitTS
	}
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	for {
		if _, err := s.seal(ctx, conn, order); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if conn.IsClosed() {
				return err
			}
			log.Error("ledger: seal failed; retrying", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// firstCheckpoint signs the empty tree when the ledger has no checkpoint
// yet, so that a verifier has one to start from.
func (s *Sealer) firstCheckpoint(ctx context.Context, conn *pgx.Conn) error {
	q := db.New(conn)
	latest, err := q.LatestCheckpoint(ctx)
	switch {
	case err == nil:
		size, err := q.TreeSize(ctx)
		if err != nil {
			return fmt.Errorf("read tree size: %w", err)
		}
		if size != latest.TreeSize {
			s.opts.Logger.Error("ledger: the tree and its latest checkpoint disagree; run valhalla verify",
				"tree_size", size, "checkpoint_size", latest.TreeSize)
		}
		return nil
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("read latest checkpoint: %w", err)
	}
	size, err := q.TreeSize(ctx)
	if err != nil || size != 0 {
		return err
	}
	cp := Checkpoint{Origin: s.opts.Key.Name(), Size: 0, Root: emptyRoot()}
	msg, err := s.opts.Key.Sign(cp)
	if err != nil {
		return err
	}
	return q.InsertCheckpoint(ctx, db.InsertCheckpointParams{TreeSize: 0, Root: cp.Root[:], Note: string(msg), SignedAt: time.Now()})
}

// emptyRoot is the root hash of the empty tree, SHA-256 of nothing.
func emptyRoot() tlog.Hash {
	h, _ := tlog.TreeHash(0, nil)
	return h
}

// The order of a seal pass: commit order (docs/ledger.md, "Commit order").
// Every entry a pass sees committed before the pass's snapshot, and every
// entry the next pass sees for the first time committed after it, so pass
// order is commit order. Within a pass, entries are ordered by the commit
// timestamp of their transaction when PostgreSQL records them
// (track_commit_timestamp), else by transaction id, and within one
// transaction by ("timestamp", id).
const (
	orderByCommitTS = `pg_xact_commit_timestamp(q.xmin) NULLS FIRST, age(q.xmin) DESC, s."timestamp", s.id, q.log_id`
	orderByXID      = `age(q.xmin) DESC, s."timestamp", s.id, q.log_id`
	// selectQueued reads the queue with each entry, or none for an entry
	// that vanished before it was sealed. The queue keeps each entry's
	// timestamp, so the join reaches the entry's one partition. (A cursor, which sqlc cannot
	// declare: the pass reads it in chunks from one snapshot.)
	selectQueued = `DECLARE seal_queue NO SCROLL CURSOR FOR
SELECT q.log_id, s.id, s."timestamp", s.level, s.category, s.message, s.correlation_id, s.user_id, s.context, s.trace_id, s.actor
FROM ledger_queue q LEFT JOIN system_logs s ON s.id = q.log_id AND s."timestamp" = q.log_timestamp
ORDER BY `
)

// seal runs one pass in one transaction on conn: it appends every queued
// entry to the tree in commit order, dequeues them, and signs and stores
// the checkpoint of the new size. A pass that dies half way (the server
// killed, the connection lost) rolls back whole, so no seq is ever skipped
// or given twice. It returns how many entries it sealed.
func (s *Sealer) seal(ctx context.Context, conn *pgx.Conn, order string) (int, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin seal: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := db.New(tx)
	size, err := q.TreeSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("read tree size: %w", err)
	}
	if _, err := tx.Exec(ctx, selectQueued+order); err != nil {
		return 0, fmt.Errorf("read queue: %w", err)
	}
	hashes := newHashStore(q)
	n := size
	var stamps []time.Time
	for {
		chunk, err := fetchQueued(ctx, tx)
		if err != nil {
			return 0, err
		}
		if len(chunk) == 0 {
			break
		}
		now := time.Now()
		sealed := db.InsertLedgerEntriesParams{SealedAt: now}
		dequeue := make([]uuid.UUID, 0, len(chunk))
		for _, c := range chunk {
			dequeue = append(dequeue, c.logID)
			if c.entry == nil {
				s.opts.Logger.Warn("ledger: a queued entry vanished before it was sealed", "id", c.logID)
				continue
			}
			leaf, err := LeafHash(*c.entry)
			if err != nil {
				return 0, err
			}
			stored, err := tlog.StoredHashesForRecordHash(n, leaf, hashes)
			if err != nil {
				return 0, fmt.Errorf("append leaf %d: %w", n+1, err)
			}
			hashes.add(n, stored)
			n++
			sealed.Seqs = append(sealed.Seqs, n)
			sealed.LogIds = append(sealed.LogIds, c.logID)
			sealed.Hashes = append(sealed.Hashes, concat(stored))
			sealed.LogTimestamps = append(sealed.LogTimestamps, c.entry.Timestamp)
			stamps = append(stamps, c.entry.Timestamp)
		}
		if len(sealed.Seqs) > 0 {
			if err := q.InsertLedgerEntries(ctx, sealed); err != nil {
				return 0, fmt.Errorf("store leaves: %w", err)
			}
		}
		if err := q.DequeueLogs(ctx, dequeue); err != nil {
			return 0, fmt.Errorf("dequeue: %w", err)
		}
		hashes.keepFrontier(n)
	}
	if n > size {
		root, err := tlog.TreeHash(n, hashes)
		if err != nil {
			return 0, fmt.Errorf("tree hash: %w", err)
		}
		cp := Checkpoint{Origin: s.opts.Key.Name(), Size: n, Root: root}
		msg, err := s.opts.Key.Sign(cp)
		if err != nil {
			return 0, err
		}
		if err := q.InsertCheckpoint(ctx, db.InsertCheckpointParams{
			TreeSize: n, Root: root[:], Note: string(msg), SignedAt: time.Now(),
		}); err != nil {
			return 0, fmt.Errorf("store checkpoint: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit seal: %w", err)
	}
	if n > size && s.opts.Sealed != nil {
		committed := time.Now()
		lags := make([]time.Duration, len(stamps))
		for i, t := range stamps {
			lags[i] = committed.Sub(t)
		}
		s.opts.Sealed(int(n-size), n, lags)
	}
	return int(n - size), nil
}

// queued is one row of the seal cursor.
type queued struct {
	logID uuid.UUID
	entry *Entry // nil when the entry vanished
}

// fetchQueued reads the next chunk of the seal cursor.
func fetchQueued(ctx context.Context, tx pgx.Tx) ([]queued, error) {
	rows, err := tx.Query(ctx, fmt.Sprintf("FETCH %d FROM seal_queue", fetchSize))
	if err != nil {
		return nil, fmt.Errorf("read queue: %w", err)
	}
	var out []queued
	for rows.Next() {
		var (
			r                                            queued
			id                                           *uuid.UUID
			ts                                           *time.Time
			level, category, message, correlation, actor *string
			userID, traceID                              *string
			context                                      []byte
		)
		if err := rows.Scan(&r.logID, &id, &ts, &level, &category, &message, &correlation, &userID, &context, &traceID, &actor); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read queue: %w", err)
		}
		if id != nil {
			r.entry = &Entry{
				ID: *id, Timestamp: *ts, Level: *level, Category: *category, Message: *message,
				CorrelationID: *correlation, UserID: userID, TraceID: traceID, Actor: *actor, Context: context,
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read queue: %w", err)
	}
	return out, nil
}

func concat(hs []tlog.Hash) []byte {
	b := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

// wait waits d or until ctx is done; it reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
