// Package lifecycle keeps system_logs' partitions (docs/lifecycle.md): it
// creates them ahead of time, moves rows out of the DEFAULT partition once
// a partition covers them, and applies retention by dropping whole
// partitions, keeping what legal holds match and recording, signed with
// the ledger's key, which sealed entries each drop retired. One server at
// a time maintains: the one holding the maintainer's advisory lock.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/duty"
	"github.com/valhalla-platform/valhalla/internal/ledger"
)

// Defaults of Options.
const (
	// DefaultInterval is the width of a partition: one UTC day.
	DefaultInterval = 24 * time.Hour
	// DefaultAhead is how many intervals past the current one the
	// maintainer keeps created.
	DefaultAhead = 2
	// DefaultEvery is how often a server tries to maintain.
	DefaultEvery = 10 * time.Minute
)

// lockKey is the session advisory lock a maintainer holds while it runs.
const lockKey int64 = 0x76_68_6c_5f_6c_69_66 // "vhl_lif"

// ErrBusy means another maintainer (another server, or valhalla retention
// run) holds the lock; try again later.
var ErrBusy = errors.New("another maintainer is running")

// Options configure a Maintainer.
type Options struct {
	// Interval is the width of each partition created from now on
	// (partitions start at multiples of it since time.Time's zero, so a
	// day starts at midnight UTC).
	Interval time.Duration
	// Ahead is how many intervals past the current one stay created.
	Ahead int
	// Retention drops partitions whose every entry is older than it; 0
	// keeps everything forever.
	Retention time.Duration
	// Key signs the retention records; required when Retention is set.
	Key *ledger.Key
	// Now returns the current time (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Maintainer creates partitions and applies retention.
type Maintainer struct {
	pool *pgxpool.Pool
	opts Options
}

// New returns a maintainer over pool.
func New(pool *pgxpool.Pool, opts Options) *Maintainer {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Ahead <= 0 {
		opts.Ahead = DefaultAhead
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Maintainer{pool: pool, opts: opts}
}

// Partition is one partition of system_logs.
type Partition struct {
	Name string
	// From and To bound its timestamps, [From, To); zero for the default.
	From, To time.Time
	Default  bool
	// Held is a partition that holds only entries legal holds kept
	// through a drop.
	Held bool
	// Rows is PostgreSQL's estimate of its rows (-1 when never analyzed).
	Rows int64
}

// Drop is what retention does (or would do) to one partition.
type Drop struct {
	Partition Partition
	// Retired counts the sealed entries dropped, whose seqs are Seqs.
	Retired int64
	Seqs    []ledger.SeqRange
	// Unsealed counts entries dropped that were never in the ledger
	// (written behind the API's back).
	Unsealed int64
	// Held counts the entries active holds keep; they stay readable.
	Held int64
	// Waiting means the partition still has entries queued for sealing,
	// so it is left for a later run.
	Waiting bool
	// unchanged is a held partition whose holds still keep every entry.
	unchanged bool
}

// Report is what one run did, or with dry-run would do.
type Report struct {
	// Partitions lists the partitions before the run, oldest first, the
	// default partition last.
	Partitions []Partition
	// Created lists the partitions created (or to be), Moved the rows
	// they took over from the default partition.
	Created []Partition
	Moved   int64
	// Cutoff is the retention's cutoff (zero when keeping forever).
	Cutoff time.Time
	// Drops lists the partitions past the cutoff and what retention does
	// to each. A run drops the partitions it just created too when they
	// are past the cutoff; a dry run lists only partitions that exist.
	Drops []Drop
}

// Run maintains once: it creates partitions ahead, moving rows out of the
// default partition into new partitions that cover them, then drops the
// partitions older than the retention. With dryRun it changes nothing and
// reports what it would do. It returns ErrBusy when another maintainer
// runs.
func (m *Maintainer) Run(ctx context.Context, dryRun bool) (Report, error) {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("maintain partitions: %w", err)
	}
	defer conn.Release()
	return m.run(ctx, conn.Conn(), dryRun, true, m.opts.Retention > 0)
}

// run does Run's part on c: creating partitions (create), applying
// retention (retire), or both.
func (m *Maintainer) run(ctx context.Context, c *pgx.Conn, dryRun, create, retire bool) (Report, error) {
	var locked bool
	if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockKey).Scan(&locked); err != nil {
		return Report{}, fmt.Errorf("maintain partitions: take the lock: %w", err)
	}
	if !locked {
		return Report{}, ErrBusy
	}
	defer func() {
		_, _ = c.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey)
	}()
	parts, err := listPartitions(ctx, c)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Partitions: parts}
	now := m.opts.Now().UTC()
	if create {
		if err := m.create(ctx, c, now, dryRun, &rep); err != nil {
			return rep, err
		}
	}
	if retire {
		rep.Cutoff = now.Add(-m.opts.Retention)
		current := parts
		if len(rep.Created) > 0 && !dryRun {
			// The partitions just created may already be past the
			// retention (old entries the default partition held).
			if current, err = listPartitions(ctx, c); err != nil {
				return rep, err
			}
		}
		if err := m.retire(ctx, c, current, dryRun, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// List returns system_logs' partitions, oldest first, the default last.
func List(ctx context.Context, pool *pgxpool.Pool) ([]Partition, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	defer conn.Release()
	return listPartitions(ctx, conn.Conn())
}

// listPartitions reads system_logs' partitions and their bounds from the
// catalog, oldest first, the default last.
func listPartitions(ctx context.Context, c *pgx.Conn) ([]Partition, error) {
	rows, err := c.Query(ctx, `
SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT',
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz,
       c.reltuples::bigint
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'system_logs'::regclass
ORDER BY 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	var out []Partition
	for rows.Next() {
		var p Partition
		var from, to *time.Time
		if err := rows.Scan(&p.Name, &p.Default, &from, &to, &p.Rows); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list partitions: %w", err)
		}
		if from != nil && to != nil {
			p.From, p.To = from.UTC(), to.UTC()
		}
		p.Held = strings.HasSuffix(p.Name, heldSuffix)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	return out, nil
}

// heldSuffix ends the name of a partition that holds only held entries.
const heldSuffix = "_held"

// floor returns the start of the interval that holds t.
func (m *Maintainer) floor(t time.Time) time.Time {
	return t.Truncate(m.opts.Interval).UTC() // Truncate works on absolute time, from the zero time, UTC
}

// partitionName names the partition starting at from.
func partitionName(from time.Time) string {
	switch {
	case from.Equal(from.Truncate(24 * time.Hour)):
		return "system_logs_p" + from.Format("20060102")
	case from.Second() == 0:
		return "system_logs_p" + from.Format("20060102_1504")
	default:
		return "system_logs_p" + from.Format("20060102_150405")
	}
}

// span is a time range [from, to).
type span struct{ from, to time.Time }

// uncovered returns the parts of s no partition of parts covers.
func uncovered(s span, parts []Partition) []span {
	out := []span{s}
	for _, p := range parts {
		if p.Default {
			continue
		}
		var next []span
		for _, o := range out {
			if !p.From.Before(o.to) || !p.To.After(o.from) { // apart
				next = append(next, o)
				continue
			}
			if o.from.Before(p.From) {
				next = append(next, span{o.from, p.From})
			}
			if p.To.Before(o.to) {
				next = append(next, span{p.To, o.to})
			}
		}
		out = next
	}
	return out
}

// create creates the partitions of the current interval and the Ahead
// next ones, and of every interval the default partition holds rows of,
// each in its own transaction that also moves those rows in.
func (m *Maintainer) create(ctx context.Context, c *pgx.Conn, now time.Time, dryRun bool, rep *Report) error {
	var wanted []span
	start := m.floor(now)
	for i := range m.opts.Ahead + 1 {
		from := start.Add(time.Duration(i) * m.opts.Interval)
		wanted = append(wanted, span{from, from.Add(m.opts.Interval)})
	}
	// The intervals the default partition holds rows of, aligned as
	// floor aligns (time.Time's zero is 0001-01-01 UTC).
	stray, err := c.Query(ctx, `SELECT DISTINCT date_bin($1::bigint * interval '1 microsecond', "timestamp", '0001-01-01 00:00:00+00')
FROM system_logs_default ORDER BY 1`, m.opts.Interval.Microseconds())
	if err != nil {
		return fmt.Errorf("read the default partition: %w", err)
	}
	strays, err := pgx.CollectRows(stray, pgx.RowTo[time.Time])
	if err != nil {
		return fmt.Errorf("read the default partition: %w", err)
	}
	for _, t := range strays {
		from := m.floor(t)
		if s := (span{from, from.Add(m.opts.Interval)}); len(wanted) == 0 || !wanted[len(wanted)-1].from.Equal(s.from) {
			wanted = append(wanted, s)
		}
	}
	known := append([]Partition(nil), rep.Partitions...)
	for _, w := range wanted {
		for _, s := range uncovered(w, known) {
			p := Partition{Name: partitionName(s.from), From: s.from, To: s.to}
			var moved int64
			if dryRun {
				if err := c.QueryRow(ctx, `SELECT count(*) FROM system_logs_default WHERE "timestamp" >= $1 AND "timestamp" < $2`,
					s.from, s.to).Scan(&moved); err != nil {
					return fmt.Errorf("count rows for %s: %w", p.Name, err)
				}
			} else if moved, err = createPartition(ctx, c, p); err != nil {
				return err
			}
			known = append(known, p)
			rep.Created = append(rep.Created, p)
			rep.Moved += moved
		}
	}
	return nil
}

// createPartition creates p as a table of its own, moves into it the rows
// of the default partition it covers, and attaches it, in one transaction:
// a row is always in exactly one partition. It first waits for a seal pass
// that is reading system_logs (ledger.PassLock) and holds the next one off:
// a pass planned before the attach commits but reading after it would look
// for a moved row in the default partition, find it gone, and take it for
// an entry that vanished. It returns how many rows moved.
func createPartition(ctx context.Context, c *pgx.Conn, p Partition) (int64, error) {
	var moved int64
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ledger.PassLock); err != nil {
			return err
		}
		name := pgx.Identifier{p.Name}.Sanitize()
		if _, err := tx.Exec(ctx, "CREATE TABLE "+name+" (LIKE system_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `WITH moved AS (DELETE FROM system_logs_default WHERE "timestamp" >= $1 AND "timestamp" < $2 RETURNING *)
INSERT INTO `+name+` SELECT * FROM moved`, p.From, p.To)
		if err != nil {
			return err
		}
		moved = tag.RowsAffected()
		return attach(ctx, tx, p)
	})
	if err != nil {
		return 0, fmt.Errorf("create partition %s: %w", p.Name, err)
	}
	return moved, nil
}

// attach attaches the table p.Name as the partition [p.From, p.To) and
// gives it the statistics every partition has (the planner reads a
// partition's own; see migrations 00013 and 00060).
func attach(ctx context.Context, tx pgx.Tx, p Partition) error {
	name := pgx.Identifier{p.Name}.Sanitize()
	// Bounds as literals: DDL takes no parameters. RFC 3339 with the
	// offset reads the same in any session time zone.
	if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE system_logs ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
		name, p.From.Format(time.RFC3339Nano), p.To.Format(time.RFC3339Nano))); err != nil {
		return err
	}
	for suffix, cols := range map[string]string{"_cl_stats": "category, level", "_cu_stats": "category, user_id", "_ul_stats": "user_id, level"} {
		stats := pgx.Identifier{p.Name + suffix}.Sanitize()
		if _, err := tx.Exec(ctx, "CREATE STATISTICS IF NOT EXISTS "+stats+" (mcv, dependencies) ON "+cols+" FROM "+name); err != nil {
			return err
		}
	}
	return nil
}

// heldCondition is true for a row s of system_logs that an active legal
// hold matches: every criterion the hold sets.
const heldCondition = `EXISTS (SELECT 1 FROM legal_holds h WHERE h.released_at IS NULL
  AND (h.category IS NULL OR h.category = s.category)
  AND (h.user_id IS NULL OR h.user_id = s.user_id)
  AND (h.since IS NULL OR s."timestamp" >= h.since)
  AND (h.until IS NULL OR s."timestamp" < h.until))`

// retire drops every partition (the default never) whose range ends at or
// before the cutoff.
func (m *Maintainer) retire(ctx context.Context, c *pgx.Conn, parts []Partition, dryRun bool, rep *Report) error {
	for _, p := range parts {
		if p.Default || p.To.After(rep.Cutoff) {
			continue
		}
		d, err := m.drop(ctx, c, p, dryRun, rep.Cutoff)
		if err != nil {
			return err
		}
		if d.unchanged {
			continue
		}
		rep.Drops = append(rep.Drops, d)
	}
	return nil
}

// drop retires partition p in one transaction: it counts what the holds
// keep and which sealed entries go, detaches p, copies the held entries
// into a held partition for the same range, drops p and stores the signed
// retention record. With dryRun it only counts.
func (m *Maintainer) drop(ctx context.Context, c *pgx.Conn, p Partition, dryRun bool, cutoff time.Time) (Drop, error) {
	d := Drop{Partition: p}
	name := pgx.Identifier{p.Name}.Sanitize()
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if !dryRun {
			// Writes into p wait until the drop commits; none are expected
			// (p is older than the retention), and reads of it are brief.
			if _, err := tx.Exec(ctx, "LOCK TABLE "+name+" IN SHARE MODE"); err != nil {
				return err
			}
		}
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ledger_queue q
  CROSS JOIN LATERAL unnest(q.log_ids, q.log_timestamps) AS u (id, ts)
  JOIN `+name+` s ON s.id = u.id AND s."timestamp" = u.ts)`).Scan(&d.Waiting); err != nil {
			return err
		}
		if d.Waiting {
			return nil
		}
		// Each count reads the partition once; the hold condition, a
		// subquery per row, runs only while some hold is active.
		var total int64
		var anyHold bool
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+name+`), EXISTS (SELECT 1 FROM legal_holds WHERE released_at IS NULL)`).Scan(&total, &anyHold); err != nil {
			return err
		}
		notHeld := "true"
		if anyHold {
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+name+` s WHERE `+heldCondition).Scan(&d.Held); err != nil {
				return err
			}
			notHeld = "NOT " + heldCondition
		}
		rows, err := tx.Query(ctx, `SELECT min(seq), max(seq) FROM (
  SELECT seq, seq - row_number() OVER (ORDER BY seq) AS island
  FROM (`+retiredLeaves(name, notHeld)+`) l) AS retired
GROUP BY island ORDER BY 1`)
		if err != nil {
			return err
		}
		if d.Seqs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ledger.SeqRange]); err != nil {
			return err
		}
		for _, s := range d.Seqs {
			d.Retired += s.To - s.From + 1
		}
		d.Unsealed = total - d.Held - d.Retired
		if p.Held && d.Held > 0 && d.Retired == 0 && d.Unsealed == 0 {
			d.unchanged = true // its holds still keep everything
			return nil
		}
		if dryRun {
			return nil
		}
		return m.replace(ctx, tx, p, d, notHeld, cutoff)
	})
	if err != nil {
		return Drop{}, fmt.Errorf("retire partition %s: %w", p.Name, err)
	}
	return d, nil
}

// retiredLeaves is the query of the leaves (id, seq) of partition name's
// entries that meet notHeld (a condition on its rows, s). They are found
// through the blocks that sealed their write transactions (ledger_tx), each
// block read once: a cost in the partition's rows, not the ledger's.
func retiredLeaves(name, notHeld string) string {
	return `SELECT u.id, b.first_seq + u.ord - 1 AS seq
FROM (SELECT DISTINCT ledger_tx FROM ` + name + ` WHERE ledger_tx IS NOT NULL) t
JOIN ledger_blocks b ON b.tx = t.ledger_tx
CROSS JOIN LATERAL ROWS FROM (unnest(b.log_ids), unnest(b.log_timestamps)) WITH ORDINALITY AS u (id, ts, ord)
JOIN ` + name + ` s ON s.id = u.id AND s."timestamp" = u.ts
WHERE ` + notHeld
}

// replace detaches and drops p, keeping its held entries (those not
// meeting notHeld) in a held partition for the same range, and stores the
// signed record of d.
func (m *Maintainer) replace(ctx context.Context, tx pgx.Tx, p Partition, d Drop, notHeld string, cutoff time.Time) error {
	if m.opts.Key == nil {
		return errors.New("no ledger key to sign the retention record")
	}
	name := pgx.Identifier{p.Name}.Sanitize()
	heldName := strings.TrimSuffix(p.Name, heldSuffix) + heldSuffix
	staging := pgx.Identifier{heldName + "_new"}.Sanitize()
	// The held entries are copied out first, while p is only share-locked
	// (reads go on); the detach, drop and attach that follow lock the
	// table for a moment only.
	if d.Held > 0 {
		if _, err := tx.Exec(ctx, "CREATE TABLE "+staging+" (LIKE system_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+staging+" SELECT * FROM "+name+" s WHERE "+heldCondition); err != nil {
			return err
		}
	}
	// The retired entries' seqs by id, for their proofs: their rows, and
	// the ledger_tx that leads to their blocks, go with p.
	if _, err := tx.Exec(ctx, `INSERT INTO ledger_retired_ids (log_id, seq) `+retiredLeaves(name, notHeld)+`
ON CONFLICT DO NOTHING`); err != nil {
		return err
	}
	if err := detach(ctx, tx, name); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "DROP TABLE "+name); err != nil {
		return err
	}
	if d.Held > 0 {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+staging+" RENAME TO "+pgx.Identifier{heldName}.Sanitize()); err != nil {
			return err
		}
		if err := attach(ctx, tx, Partition{Name: heldName, From: p.From, To: p.To}); err != nil {
			return err
		}
	}
	now := m.opts.Now().UTC().Truncate(time.Microsecond)
	r := ledger.Retirement{
		Partition: p.Name, From: p.From, To: p.To,
		Policy:  "retention " + m.opts.Retention.String() + ", cutoff " + cutoff.Format(time.RFC3339),
		Retired: d.Retired, Held: d.Held, Seqs: d.Seqs, At: now,
	}
	note, err := m.opts.Key.SignRetirement(r)
	if err != nil {
		return err
	}
	return db.New(tx).InsertRetirement(ctx, db.InsertRetirementParams{
		Partition: r.Partition, RangeFrom: r.From, RangeTo: r.To, Policy: r.Policy,
		SeqRanges: ledger.FormatSeqRanges(r.Seqs), Retired: r.Retired, Held: r.Held, RetiredAt: r.At, Note: string(note),
	})
}

// How detach waits for system_logs.
const (
	// detachLockWait is the longest a drop's first attempts wait for the
	// locks, and so the longest the writes queued behind it wait, per
	// attempt. Every detachEscalate attempts the wait doubles, up to
	// detachLockWaitMax: when what holds the table or the partition never
	// lets go within the wait, a longer one is the only way in, and a
	// moment's queue of writes the price. The usual such holder is
	// autovacuum on the partition, which PostgreSQL cancels only for a
	// request that has waited deadlock_timeout (1 s by default), so the
	// longest wait is above it.
	detachLockWait    = 50 * time.Millisecond
	detachLockWaitMax = 2 * time.Second
	detachEscalate    = 5
	// detachPause is the time between attempts, which the writes get.
	detachPause = 100 * time.Millisecond
	// detachAttempts bounds the attempts; past them the drop fails and is
	// tried again at the next run.
	detachAttempts = 200
	// detachPassWait is the longest an attempt waits for a seal pass to
	// finish reading system_logs (ledger.PassLock). Only sealing waits
	// behind it, for a pass that reads a long backlog; past it, the
	// attempt is retried as a lock wait is.
	detachPassWait = 10 * time.Second
)

// detachWait is how long attempt (from 1) waits for system_logs' lock.
func detachWait(attempt int) time.Duration {
	return min(detachLockWait<<min((attempt-1)/detachEscalate, 16), detachLockWaitMax)
}

// detach detaches partition name from system_logs in tx. DETACH PARTITION
// takes an ACCESS EXCLUSIVE lock on system_logs (CONCURRENTLY would not,
// but cannot run inside the drop's transaction, which keeps the drop and
// its signed record together, nor beside a default partition). While it
// waits for the statements already running on the table, every new write
// queues behind it. The longest of those statements is a seal pass reading
// a backlog (2.1 s seen), so each attempt first waits for the pass to end
// and holds the next one off (ledger.PassLock), which costs writes
// nothing; then it waits at most detachWait for the table and, when that
// is not enough, gives up, lets the writes through for detachPause and
// tries again, waiting longer every detachEscalate attempts. Once it holds
// the lock, the drop commits within milliseconds. A failed attempt rolls
// back to its savepoint, which releases both locks.
func detach(ctx context.Context, tx pgx.Tx, name string) error {
	for attempt := 1; ; attempt++ {
		if _, err := tx.Exec(ctx, "SAVEPOINT detach"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = '%dms'", detachPassWait.Milliseconds()))
		if err == nil {
			_, err = tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ledger.PassLock)
		}
		if err == nil {
			_, err = tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = '%dms'", detachWait(attempt).Milliseconds()))
		}
		if err == nil {
			_, err = tx.Exec(ctx, "ALTER TABLE system_logs DETACH PARTITION "+name)
		}
		if err == nil {
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = DEFAULT"); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "RELEASE SAVEPOINT detach")
			return err
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55P03" || attempt == detachAttempts { // 55P03: lock_not_available
			return fmt.Errorf("detach (attempt %d): %w", attempt, err)
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT detach"); err != nil {
			return err
		}
		if !duty.Wait(ctx, detachPause) {
			return ctx.Err()
		}
	}
}
