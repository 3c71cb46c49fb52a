package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/duty"
)

// DefaultSealInterval is how often the sequencer seals by default.
const DefaultSealInterval = 250 * time.Millisecond

// SequencerLock is the key of the session advisory lock the sequencer
// holds: whoever holds it on the database is the one sequencer. In
// pg_locks it shows as locktype advisory with classid its high 32 bits,
// objid its low 32 bits and objsubid 1 (docs/scaling.md).
const SequencerLock int64 = 0x76_68_6c_5f_6c_65_64 // "vhl_led"

// PassLock is the key of the transaction-level advisory lock a seal pass
// holds, shared, in the transaction that reads system_logs (the first of
// the pass). Retention takes it exclusive before it detaches a partition,
// which needs system_logs' ACCESS EXCLUSIVE lock: it waits for the pass
// there, where no write waits behind it, and not on system_logs, where
// every new write would queue behind it for as long as the pass runs
// (docs/lifecycle.md, "Dropping a partition under load").
const PassLock int64 = 0x76_68_6c_5f_70_61_73 // "vhl_pas"

// takeoverPoll is how often a server that is not the sequencer tries to
// become it. A sequencer killed with kill -9 loses its connection, and so
// the lock, at once, so another server takes over within about this long.
const takeoverPoll = time.Second

// A seal pass reads the queue in chunks of about fetchEntries entries, and
// at most fetchTransactions queue rows (write transactions: a batch, a
// group of single writes) at once.
const (
	fetchEntries      = 2000
	fetchTransactions = 64
)

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
	// many entries it sealed, the new tree size and each entry's lag: from
	// the commit of its write (its timestamp when the database does not
	// record commit timestamps) to the commit of its seal.
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
	duty.Run(ctx, duty.Options{
		Name: "ledger sequencer", Lock: SequencerLock, Connect: s.opts.Connect,
		Poll: takeoverPoll, Leading: s.opts.Leading, Logger: s.opts.Logger,
	}, s.lead)
}

// lead seals every interval on conn, which holds the lock.
func (s *Sealer) lead(ctx context.Context, conn *pgx.Conn) error {
	log := s.opts.Logger
	var commitTS bool
	if err := conn.QueryRow(ctx, "SELECT current_setting('track_commit_timestamp') = 'on'").Scan(&commitTS); err != nil {
		return fmt.Errorf("read track_commit_timestamp: %w", err)
	}
	// The pass's one query sorts the whole queue: JIT compiling it (its
	// estimated cost is far above jit_above_cost with a backlog) took
	// longer than running it, and the default work_mem sent a backlog of
	// 100,000 to disk.
	if _, err := conn.Exec(ctx, "SET jit = off; SET work_mem = '32MB'"); err != nil {
		return fmt.Errorf("configure the sequencer's session: %w", err)
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
		_, err := s.seal(ctx, conn, order, commitTS)
		if err != nil {
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
	orderByCommitTS = `pg_xact_commit_timestamp(q.xmin) NULLS FIRST, age(q.xmin) DESC, q.id`
	orderByXID      = `age(q.xmin) DESC, q.id`
	// selectQueued reads the queue (WITH HOLD or not, the first %s): one
	// row per write transaction, with its commit timestamp (or NULL, the
	// second), the ids, timestamps and leaf hashes of the entries it
	// stored, and, of those queued without a leaf hash (see WriteLeafHash),
	// the stored entries, column by column, to hash. They are read in the
	// cursor, from its snapshot and the partitions its plan saw: a lookup
	// in a later statement could miss a row that partition maintenance
	// moved meanwhile (its new partition visible, its rows not yet), and
	// take it for one that vanished. Each lookup reaches the entry's one
	// partition by id and timestamp; LIMIT 1 keeps it a lookup (without it
	// the planner flattens it into a join that reads every entry). (A
	// cursor, which sqlc cannot declare: the pass reads it in chunks from
	// one snapshot.)
	selectQueued = `DECLARE seal_queue NO SCROLL CURSOR%s FOR
SELECT q.id, %s, q.log_ids, q.log_timestamps, q.leaf_hashes,
       s.ids, s.stamps, s.levels, s.categories, s.messages, s.correlation_ids, s.user_ids, s.contexts, s.trace_ids, s.actors
FROM ledger_queue q
CROSS JOIN LATERAL (
    SELECT array_agg(e.id) AS ids, array_agg(e."timestamp") AS stamps, array_agg(e.level) AS levels,
           array_agg(e.category) AS categories, array_agg(e.message) AS messages, array_agg(e.correlation_id) AS correlation_ids,
           array_agg(e.user_id) AS user_ids, array_agg(e.context::text) AS contexts, array_agg(e.trace_id) AS trace_ids,
           array_agg(e.actor) AS actors
    FROM unnest(q.log_ids, q.log_timestamps, q.leaf_hashes) AS k (id, ts, leaf)
    CROSS JOIN LATERAL (SELECT * FROM system_logs e WHERE e.id = k.id AND e."timestamp" = k.ts LIMIT 1) e
    WHERE k.leaf IS NULL OR octet_length(k.leaf) <> 32
) s
ORDER BY `
)

// seal runs one pass on conn: it appends every queued entry to the tree in
// commit order, dequeues them, and signs and stores the checkpoint of the
// new size. It reads the queue through one cursor, so from one snapshot. A
// transaction that dies half way (the server killed, the connection lost)
// rolls back whole, so no seq is ever skipped or given twice.
//
// With commit timestamps (bounded), the cursor is held across commits, and
// the pass commits what it sealed, with its checkpoint, about every
// interval: a backlog is sealed in steps that each publish a checkpoint
// rather than in one long transaction, and the steps keep the order of the
// one snapshot. When a step fails, the entries it had not committed are
// the oldest of the next pass's snapshot, which commit timestamps order
// first (docs/ledger.md, "Commit order"); without commit timestamps a pass
// is one transaction. It returns how many entries it sealed.
func (s *Sealer) seal(ctx context.Context, conn *pgx.Conn, order string, bounded bool) (int, error) {
	p := &pass{s: s, conn: conn}
	if err := p.begin(ctx); err != nil {
		return 0, err
	}
	defer p.end(ctx)
	if _, err := p.tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1)", PassLock); err != nil {
		return 0, fmt.Errorf("take the pass lock: %w", err)
	}
	size, err := p.q.TreeSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("read tree size: %w", err)
	}
	committedCol, hold := "NULL::timestamptz", ""
	if bounded {
		committedCol, hold = "pg_xact_commit_timestamp(q.xmin)", " WITH HOLD"
	}
	if _, err := p.tx.Exec(ctx, fmt.Sprintf(selectQueued, hold, committedCol)+order); err != nil {
		return 0, fmt.Errorf("read queue: %w", err)
	}
	p.held = bounded
	hashes := newHashStore(p.q)
	n, stepSize := size, size
	stepStart := time.Now()
	var stamps []time.Time
	fetch := 1 // until a chunk tells how many entries a row holds
	for {
		if bounded && n > stepSize && time.Since(stepStart) >= s.opts.Interval {
			if err := p.commit(ctx, hashes, stepSize, n, stamps); err != nil {
				return int(stepSize - size), err
			}
			if err := p.begin(ctx); err != nil {
				return int(n - size), err
			}
			hashes.q = p.q
			stepSize, stepStart, stamps = n, time.Now(), stamps[:0]
		}
		chunk, err := fetchQueued(ctx, conn, fetch)
		if err != nil {
			return int(stepSize - size), err
		}
		if len(chunk) == 0 {
			break
		}
		txs, err := expand(chunk)
		if err != nil {
			return int(stepSize - size), err
		}
		entries := 0
		for _, t := range txs {
			entries += len(t.entries)
		}
		full := len(chunk) == fetch
		// The next chunk: as many rows as held about fetchEntries here.
		fetch = max(1, min(fetchTransactions, fetchEntries*len(chunk)/max(1, entries)))
		now := time.Now()
		blocks := make([]db.CopyLedgerBlocksParams, 0, len(txs))
		for _, t := range txs {
			b := db.CopyLedgerBlocksParams{FirstSeq: n + 1, FirstIndex: tlog.StoredHashIndex(0, n), Tx: t.id, SealedAt: now}
			for _, c := range t.entries {
				if c.leaf == nil {
					s.opts.Logger.Warn("ledger: a queued entry vanished before it was sealed", "id", c.logID)
					continue
				}
				stored, err := tlog.StoredHashesForRecordHash(n, *c.leaf, hashes)
				if err != nil {
					return int(stepSize - size), fmt.Errorf("append leaf %d: %w", n+1, err)
				}
				hashes.add(n, stored)
				n++
				b.LogIds = append(b.LogIds, c.logID)
				b.LogTimestamps = append(b.LogTimestamps, c.timestamp)
				b.LeafHashes = append(b.LeafHashes, c.leaf[:])
				for _, h := range stored {
					b.Hashes = append(b.Hashes, h[:]...)
				}
				stamps = append(stamps, c.since())
			}
			if len(b.LogIds) > 0 {
				b.LastSeq = n
				blocks = append(blocks, b)
			}
		}
		if len(blocks) > 0 {
			if _, err := p.q.CopyLedgerBlocks(ctx, blocks); err != nil {
				return int(stepSize - size), fmt.Errorf("store blocks: %w", err)
			}
		}
		dequeue := make([]int64, len(chunk))
		for i, t := range chunk {
			dequeue[i] = t.id
		}
		if err := p.q.DequeueLogs(ctx, dequeue); err != nil {
			return int(stepSize - size), fmt.Errorf("dequeue: %w", err)
		}
		hashes.keepFrontier(n)
		if !full {
			break
		}
	}
	if err := p.commit(ctx, hashes, stepSize, n, stamps); err != nil {
		return int(stepSize - size), err
	}
	return int(n - size), nil
}

// pass is the transaction a seal pass is in, and its cursor.
type pass struct {
	s    *Sealer
	conn *pgx.Conn
	tx   pgx.Tx // nil between transactions
	q    *db.Queries
	held bool // the cursor is WITH HOLD: it outlives the transactions
}

func (p *pass) begin(ctx context.Context) error {
	tx, err := p.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin seal: %w", err)
	}
	p.tx, p.q = tx, db.New(tx)
	return nil
}

// commit signs and stores the checkpoint of size n when the tree grew from
// from, commits, and reports what it sealed.
func (p *pass) commit(ctx context.Context, hashes *hashStore, from, n int64, stamps []time.Time) error {
	if n > from {
		root, err := tlog.TreeHash(n, hashes)
		if err != nil {
			return fmt.Errorf("tree hash: %w", err)
		}
		cp := Checkpoint{Origin: p.s.opts.Key.Name(), Size: n, Root: root}
		msg, err := p.s.opts.Key.Sign(cp)
		if err != nil {
			return err
		}
		if err := p.q.InsertCheckpoint(ctx, db.InsertCheckpointParams{
			TreeSize: n, Root: root[:], Note: string(msg), SignedAt: time.Now(),
		}); err != nil {
			return fmt.Errorf("store checkpoint: %w", err)
		}
	}
	tx := p.tx
	p.tx = nil
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit seal: %w", err)
	}
	if n > from && p.s.opts.Sealed != nil {
		committed := time.Now()
		lags := make([]time.Duration, len(stamps))
		for i, t := range stamps {
			lags[i] = committed.Sub(t)
		}
		p.s.opts.Sealed(int(n-from), n, lags)
	}
	return nil
}

// end rolls back an unfinished transaction and closes a held cursor.
func (p *pass) end(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if p.tx != nil {
		_ = p.tx.Rollback(ctx)
	}
	if p.held && !p.conn.IsClosed() {
		// Gone already when the transaction that declared it rolled back.
		_, _ = p.conn.Exec(ctx, "CLOSE ALL")
	}
}

// queuedTx is one row of the seal cursor: the entries one write
// transaction stored.
type queuedTx struct {
	id int64
	// committed is when the transaction committed, when the database
	// records commit timestamps.
	committed  *time.Time
	ids        []uuid.UUID
	timestamps []time.Time
	leaves     [][]byte // each 32 bytes, or nil: hash the stored entry
	// stored are the stored entries of those without a leaf hash, by id
	// (one that vanished is absent).
	stored map[uuid.UUID]Entry
}

// queued is one entry to seal.
type queued struct {
	logID     uuid.UUID
	timestamp time.Time
	committed *time.Time
	// leaf is its leaf hash: the one queued, else the stored entry's; nil
	// when it has neither (the entry vanished).
	leaf *tlog.Hash
}

// since is when the entry's seal lag starts: its commit when known, else
// its timestamp.
func (q queued) since() time.Time {
	if q.committed != nil {
		return *q.committed
	}
	return q.timestamp
}

// fetchQueued reads the next chunk of the seal cursor.
func fetchQueued(ctx context.Context, conn *pgx.Conn, n int) ([]queuedTx, error) {
	rows, err := conn.Query(ctx, fmt.Sprintf("FETCH %d FROM seal_queue", n))
	if err != nil {
		return nil, fmt.Errorf("read queue: %w", err)
	}
	var out []queuedTx
	for rows.Next() {
		var (
			t                                                    queuedTx
			ids                                                  []uuid.UUID
			stamps                                               []time.Time
			levels, categories, messages, correlations, contexts []string
			actors                                               []string
			userIDs, traceIDs                                    []*string
		)
		if err := rows.Scan(&t.id, &t.committed, &t.ids, &t.timestamps, &t.leaves,
			&ids, &stamps, &levels, &categories, &messages, &correlations, &userIDs, &contexts, &traceIDs, &actors); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read queue: %w", err)
		}
		if len(t.timestamps) != len(t.ids) || len(t.leaves) != len(t.ids) {
			rows.Close()
			return nil, fmt.Errorf("read queue: row %d: %d ids, %d timestamps, %d leaf hashes", t.id, len(t.ids), len(t.timestamps), len(t.leaves))
		}
		t.stored = make(map[uuid.UUID]Entry, len(ids))
		for i, id := range ids {
			t.stored[id] = Entry{ID: id, Timestamp: stamps[i], Level: levels[i], Category: categories[i],
				Message: messages[i], CorrelationID: correlations[i], UserID: userIDs[i], TraceID: traceIDs[i],
				Actor: actors[i], Context: []byte(contexts[i])}
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read queue: %w", err)
	}
	return out, nil
}

// queuedEntries are the entries one write transaction (queue row id)
// stored, in the order they are sealed.
type queuedEntries struct {
	id      int64
	entries []queued
}

// expand returns the entries of chunk by transaction, in the order they
// are sealed: the transactions' order, and within one transaction
// ("timestamp", id), each with its leaf hash: the one queued, else its
// stored entry's.
func expand(chunk []queuedTx) ([]queuedEntries, error) {
	out := make([]queuedEntries, 0, len(chunk))
	for _, t := range chunk {
		entries := make([]queued, 0, len(t.ids))
		for i, id := range t.ids {
			q := queued{logID: id, timestamp: t.timestamps[i], committed: t.committed}
			// A leaf hash that is not one (written by SQL: the API's are)
			// is ignored rather than stopping every pass after this one.
			if leaf := t.leaves[i]; len(leaf) == tlog.HashSize {
				h := tlog.Hash(leaf)
				q.leaf = &h
			} else if e, ok := t.stored[id]; ok {
				h, err := LeafHash(e)
				if err != nil {
					return nil, err
				}
				q.leaf = &h
			}
			entries = append(entries, q)
		}
		slices.SortFunc(entries, func(a, b queued) int {
			if c := a.timestamp.Compare(b.timestamp); c != 0 {
				return c
			}
			return bytes.Compare(a.logID[:], b.logID[:])
		})
		out = append(out, queuedEntries{id: t.id, entries: entries})
	}
	return out, nil
}
