package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/duty"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/lifecycle"
)

// The cost curve (make bench-scale, docs/scaling.md): the same runs at
// every size of the table, each size a database of its own with a server
// of its own, the sizes' runs interleaved slice by slice so that they share
// whatever else the machine does.
const (
	// goalScaleLatency: every latency at a size ≤ this × its value at the
	// smallest size (10M against 1M).
	goalScaleLatency = 1.25
	// goalScaleWrites: write throughput at a size ≥ this × the smallest's.
	goalScaleWrites = 0.9
	// goalDropP99: single-write p99 while a partition is dropped ≤ this ×
	// the p99 of the same run outside the drop.
	goalDropP99 = 2
	// feedPage is the page size of the feed run, as valhalla logs follow
	// reads it.
	feedPage = 100
	// scaleFeedTargets is how many places in the feed the feed run reads.
	scaleFeedTargets = 500
)

// scaleSize is one size of the curve.
type scaleSize struct {
	Rows int
	// Build is how long loading the rows took (COPY into the partitions,
	// VACUUM ANALYZE, the ledger's rows), or 0 when they were cached.
	Build time.Duration
	// TableBytes and IndexBytes are system_logs' partitions' heap (with
	// TOAST) and index sizes; LedgerBytes is ledger_blocks with its
	// indexes.
	TableBytes, IndexBytes, LedgerBytes int64
	Write, Batch                        stats
	Lists                               []scaleList
	Feed, Get                           stats
	// Drop is the single-write run during which a partition was dropped.
	Drop scaleDrop

	url    string
	server *process
}

// scaleList is one list scenario at one size.
type scaleList struct {
	Name        string
	Depth       int
	First, Deep stats
}

// scaleDrop is a single-write run with a partition dropped by retention
// part way.
type scaleDrop struct {
	// Rows is how many rows the dropped partition held; Took how long the
	// drop (lifecycle's retention run) took.
	Rows int64
	Took time.Duration
	// During and Outside are the writes sent while the drop ran and the
	// others of the same run.
	During, Outside stats
}

// scaleResults is the curve.
type scaleResults struct {
	Sizes []*scaleSize
	// Skipped names sizes left out for want of disk.
	Skipped []string
	// WALPerWrite and WALPerBatchRow are the WAL the cluster wrote per
	// entry during the single-write and batch runs (every size together):
	// what a replica must replay (docs/scaling.md).
	WALPerWrite, WALPerBatchRow float64
}

// runScale loads every size (or reuses the cached ones), starts a server
// on each and measures them side by side.
func runScale(ctx context.Context, cfg config, env *benchEnv) (scaleResults, error) {
	var res scaleResults
	defer func() {
		for _, s := range res.Sizes {
			if s.server != nil {
				s.server.Stop()
			}
		}
	}()
	keyFile := filepath.Join(env.dir, "scale-ledger.key")
	key, err := ledger.LoadOrCreateKey(keyFile)
	if err != nil {
		return res, err
	}
	for _, rows := range cfg.ScaleSizes {
		if len(res.Sizes) > 0 && !datasetCached(ctx, env, rows) {
			if need, free := diskNeed(res.Sizes[len(res.Sizes)-1], rows), freeDisk(env.dir); free < need {
				res.Skipped = append(res.Skipped, fmt.Sprintf("%s rows (needs about %.1f GiB, %.1f GiB free)",
					thousands(int64(rows)), float64(need)/(1<<30), float64(free)/(1<<30)))
				continue
			}
		}
		s, err := prepareScale(ctx, env, rows)
		if err != nil {
			return res, fmt.Errorf("%d rows: %w", rows, err)
		}
		res.Sizes = append(res.Sizes, s)
	}
	for _, s := range res.Sizes {
		if s.server, err = startLedgerServer(ctx, env, s.url, keyFile, sealInterval, fmt.Sprintf("server-scale-%d.log", s.Rows)); err != nil {
			return res, err
		}
	}
	measure := func(what string, concurrency int, run func(s *scaleSize) func(load) stats, into func(s *scaleSize) *stats) error {
		var cs []contender
		for _, s := range res.Sizes {
			cs = append(cs, contender{fmt.Sprintf("scale %s: %s", sizeName(s.Rows), what), concurrency, s.server.PID(), run(s), into(s)})
		}
		return interleave(ctx, cfg, env.meter, env.progress, nil, cs...)
	}
	httpRun := func(targets func(s *scaleSize) []vegeta.Target, want int) func(s *scaleSize) func(load) stats {
		return func(s *scaleSize) func(load) stats {
			ts := targets(s)
			return func(l load) stats { return l.httpTargets(ctx, ts, want) }
		}
	}
	wal, err := newWALMeter(ctx, env)
	if err != nil {
		return res, err
	}
	defer wal.close()
	// The entries written since since, warm-ups included, as the WAL is.
	written := func(since time.Time) int64 {
		var total int64
		for _, s := range res.Sizes {
			var n int64
			if conn, err := pgx.Connect(ctx, s.url); err == nil {
				_ = conn.QueryRow(ctx, `SELECT count(*) FROM system_logs WHERE "timestamp" >= $1`, since).Scan(&n)
				_ = conn.Close(ctx)
			}
			total += n
		}
		return total
	}
	since := time.Now()
	wal.start(ctx)
	err = measure("single write", cfg.Concurrency,
		httpRun(func(s *scaleSize) []vegeta.Target {
			return []vegeta.Target{post(s.server.Addr, "/system/logs", writeBody)}
		}, http.StatusCreated),
		func(s *scaleSize) *stats { return &s.Write })
	if err != nil {
		return res, err
	}
	res.WALPerWrite = wal.per(ctx, written(since))
	since = time.Now()
	wal.start(ctx)
	err = measure(fmt.Sprintf("batch of %d", batchSize), cfg.Concurrency,
		httpRun(func(s *scaleSize) []vegeta.Target {
			return []vegeta.Target{post(s.server.Addr, "/system/logs/batch", batchBody())}
		}, http.StatusCreated),
		func(s *scaleSize) *stats { return &s.Batch })
	if err != nil {
		return res, err
	}
	res.WALPerBatchRow = wal.per(ctx, written(since))
	for _, sc := range listScenarios() {
		if !sc.Goals {
			continue // the exact count grows with the table by design
		}
		firsts := map[*scaleSize]vegeta.Target{}
		deeps := map[*scaleSize]vegeta.Target{}
		for _, s := range res.Sizes {
			base := "http://" + s.server.Addr + "/system/logs?"
			deep, depth, err := deepCursor(ctx, base, sc.Query)
			if err != nil {
				return res, fmt.Errorf("%s at %d rows: %w", sc.Name, s.Rows, err)
			}
			q := url.Values{}
			for k, v := range sc.Query {
				q[k] = v
			}
			q.Set("cursor", deep)
			firsts[s] = vegeta.Target{Method: http.MethodGet, URL: base + sc.Query.Encode(), Header: authHeader()}
			deeps[s] = vegeta.Target{Method: http.MethodGet, URL: base + q.Encode(), Header: authHeader()}
			s.Lists = append(s.Lists, scaleList{Name: sc.Name, Depth: depth})
		}
		n := len(res.Sizes[0].Lists) - 1
		err := measure("list "+sc.Name+", first page", cfg.ListConcurrency,
			httpRun(func(s *scaleSize) []vegeta.Target { return []vegeta.Target{firsts[s]} }, http.StatusOK),
			func(s *scaleSize) *stats { return &s.Lists[n].First })
		if err != nil {
			return res, err
		}
		err = measure(fmt.Sprintf("list %s, page %d", sc.Name, deepPage), cfg.ListConcurrency,
			httpRun(func(s *scaleSize) []vegeta.Target { return []vegeta.Target{deeps[s]} }, http.StatusOK),
			func(s *scaleSize) *stats { return &s.Lists[n].Deep })
		if err != nil {
			return res, err
		}
	}
	err = measure(fmt.Sprintf("GET /system/logs/feed, %d entries from a random seq", feedPage), cfg.ListConcurrency,
		httpRun(func(s *scaleSize) []vegeta.Target { return feedTargets(s) }, http.StatusOK),
		func(s *scaleSize) *stats { return &s.Feed })
	if err != nil {
		return res, err
	}
	gets := map[*scaleSize][]vegeta.Target{}
	for _, s := range res.Sizes {
		pool, err := database.Open(ctx, s.url, 30*time.Second, nil)
		if err != nil {
			return res, err
		}
		t, err := readTargets(ctx, pool, s.server.Addr)
		pool.Close()
		if err != nil {
			return res, err
		}
		gets[s] = t.get
	}
	err = measure("GET /system/logs/{id}", cfg.ListConcurrency,
		httpRun(func(s *scaleSize) []vegeta.Target { return gets[s] }, http.StatusOK),
		func(s *scaleSize) *stats { return &s.Get })
	if err != nil {
		return res, err
	}
	for _, s := range res.Sizes {
		if s.Drop, err = dropDuringWrites(ctx, cfg, env, s, key); err != nil {
			return res, fmt.Errorf("partition drop at %d rows: %w", s.Rows, err)
		}
	}
	return res, nil
}

// sizeName is "1M" for 1,000,000 rows.
func sizeName(rows int) string {
	if rows%1_000_000 == 0 {
		return fmt.Sprintf("%dM", rows/1_000_000)
	}
	return thousands(int64(rows))
}

// datasetCached reports whether the data dir already holds the dataset of
// rows rows (its database, loaded by this version of the generator), which
// needs no more disk.
func datasetCached(ctx context.Context, env *benchEnv, rows int) bool {
	conn, err := pgx.Connect(ctx, env.cluster.ConnString(fmt.Sprintf("bench_scale_%d", rows)))
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	cached, err := holdsDataset(ctx, conn, rows)
	return err == nil && cached
}

// diskNeed estimates the bytes rows would take, from the bytes per row of
// the largest size so far (whose share of free space is the smallest), with
// room for VACUUM and the WAL.
func diskNeed(largest *scaleSize, rows int) int64 {
	perRow := float64(largest.TableBytes+largest.IndexBytes+largest.LedgerBytes) / float64(largest.Rows)
	return int64(perRow * float64(rows) * 1.5)
}

// freeDisk is the bytes free on dir's file system.
func freeDisk(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return int64(st.Bavail) * st.Bsize
}

// feedTargets reads the feed from random places of s's ledger.
func feedTargets(s *scaleSize) []vegeta.Target {
	r := rand.New(rand.NewPCG(uint64(s.Rows), 1))
	var out []vegeta.Target
	for range scaleFeedTargets {
		after := r.IntN(s.Rows - feedPage)
		out = append(out, vegeta.Target{Method: http.MethodGet, Header: authHeader(),
			URL: "http://" + s.server.Addr + "/system/logs/feed?limit=" + strconv.Itoa(feedPage) + "&after=" + strconv.Itoa(after)})
	}
	return out
}

// prepareScale makes sure database bench_scale_<rows> holds the dataset of
// rows rows, sealed, and measures its size.
func prepareScale(ctx context.Context, env *benchEnv, rows int) (*scaleSize, error) {
	name := fmt.Sprintf("bench_scale_%d", rows)
	if err := env.cluster.CreateDatabase(ctx, name); err != nil {
		return nil, err
	}
	s := &scaleSize{Rows: rows, url: env.cluster.ConnString(name)}
	pool, err := database.Open(ctx, s.url, 30*time.Second, nil)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	applied, err := database.Migrate(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("migrate (delete %s to load it again): %w", name, err)
	}
	start := time.Now()
	loaded, err := ensureDataset(ctx, pool, rows, len(applied) > 0, env.progress)
	if err != nil {
		return nil, err
	}
	if !loaded {
		if err := forgetEarlierRuns(ctx, pool, rows, env.progress); err != nil {
			return nil, err
		}
	}
	var size int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(last_seq), 0) FROM ledger_blocks`).Scan(&size); err != nil {
		return nil, fmt.Errorf("ledger size: %w", err)
	}
	if loaded || size != int64(rows) {
		// The feed's cost is reading ledger_blocks joined to
		// system_logs; it does not depend on the hashes' values. So the
		// ledger's rows are written by SQL, in the sequencer's order, with
		// a stand-in leaf hash (SHA-256 of the id): a valid tree would
		// take the sequencer 10M/4,700 s, 35 minutes. These databases
		// are for measuring; valhalla verify fails on them.
		env.progress("writing the ledger rows of %s entries (stand-in hashes)", thousands(int64(rows)))
		if _, err := pool.Exec(ctx, `TRUNCATE ledger_blocks, ledger_checkpoints, ledger_queue, ledger_retired_ids`); err != nil {
			return nil, fmt.Errorf("ledger rows: %w", err)
		}
		// Blocks of 1,000, as batches seal, each entry pointing at its own.
		if _, err := pool.Exec(ctx, `INSERT INTO ledger_blocks (first_seq, last_seq, first_index, tx, log_ids, log_timestamps, leaf_hashes, hashes, sealed_at)
SELECT min(seq), max(seq), 2 * (min(seq) - 1) - bit_count((min(seq) - 1)::bit(64)), -((seq - 1) / 1000 + 1),
       array_agg(id ORDER BY seq), array_agg(ts ORDER BY seq), array_agg(leaf ORDER BY seq), string_agg(leaf, ''::bytea ORDER BY seq), now()
FROM (SELECT row_number() OVER (ORDER BY "timestamp", id) AS seq, id, "timestamp" AS ts, sha256(id::text::bytea) AS leaf FROM system_logs) r
GROUP BY (seq - 1) / 1000`); err != nil {
			return nil, fmt.Errorf("ledger rows: %w", err)
		}
		if _, err := pool.Exec(ctx, `UPDATE system_logs s SET ledger_tx = -((r.seq - 1) / 1000 + 1)
FROM (SELECT row_number() OVER (ORDER BY "timestamp", id) AS seq, id FROM system_logs) r WHERE r.id = s.id`); err != nil {
			return nil, fmt.Errorf("ledger rows: %w", err)
		}
		for _, table := range []string{"system_logs", "ledger_blocks"} {
			if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+table); err != nil {
				return nil, fmt.Errorf("vacuum analyze: %w", err)
			}
		}
		s.Build = time.Since(start)
		env.progress("%s rows built in %s", thousands(int64(rows)), s.Build.Round(time.Second))
	}
	err = pool.QueryRow(ctx, `SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid)), pg_total_relation_size('ledger_blocks')
FROM pg_partition_tree('system_logs') WHERE isleaf`).Scan(&s.TableBytes, &s.IndexBytes, &s.LedgerBytes)
	if err != nil {
		return nil, fmt.Errorf("sizes: %w", err)
	}
	return s, nil
}

// forgetEarlierRuns deletes what earlier runs wrote into a cached dataset
// (their writes, stamped after dataEnd, and the ledger rows and checkpoints
// that sealed them), so that every run measures the same table.
func forgetEarlierRuns(ctx context.Context, pool *pgxpool.Pool, rows int, progress func(string, ...any)) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("forget earlier runs: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	tag, err := tx.Exec(ctx, `DELETE FROM system_logs WHERE "timestamp" >= $1`, dataEnd)
	if err != nil {
		return fmt.Errorf("forget earlier runs: %w", err)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM ledger_queue`, nil},
		{`DELETE FROM ledger_retirements`, nil}, // of the partitions the drop runs made and dropped
		{`DELETE FROM ledger_retired_ids`, nil},
		{`DELETE FROM ledger_blocks WHERE first_seq > $1`, []any{rows}},
		{`DELETE FROM ledger_checkpoints WHERE tree_size > $1`, []any{rows}},
	} {
		if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("forget earlier runs: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("forget earlier runs: %w", err)
	}
	if err := reindexEmptyPartitions(ctx, pool); err != nil {
		return err
	}
	if tag.RowsAffected() > 0 {
		progress("deleted the %s entries earlier runs wrote; vacuum analyze", thousands(tag.RowsAffected()))
		for _, table := range []string{"system_logs", "ledger_blocks"} {
			if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+table); err != nil {
				return fmt.Errorf("vacuum analyze: %w", err)
			}
		}
	}
	return nil
}

// dropDuringWrites runs single writes against s for the run's duration and,
// a third of the way in, drops a partition by retention (the code a
// server's retention runner runs): a partition made for it, the day before
// the dataset, holding as many rows as a day of the dataset.
func dropDuringWrites(ctx context.Context, cfg config, env *benchEnv, s *scaleSize, key *ledger.Key) (scaleDrop, error) {
	var d scaleDrop
	pool, err := database.Open(ctx, s.url, 30*time.Second, nil)
	if err != nil {
		return d, err
	}
	defer pool.Close()
	day := 24 * time.Hour
	made := lifecycle.New(pool, lifecycle.Options{Now: func() time.Time { return dataStart.Add(-day) }, Ahead: 1})
	if err := retryBusy(ctx, func() error { _, err := made.Run(ctx, false); return err }); err != nil {
		return d, fmt.Errorf("create the partition to drop: %w", err)
	}
	tag, err := pool.Exec(ctx, `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, user_id, context, actor)
SELECT gen_random_uuid(), "timestamp" - interval '1 day', level, category, message, correlation_id, user_id, context, actor
FROM system_logs WHERE "timestamp" >= $1 AND "timestamp" < $2`, dataStart, dataStart.Add(day))
	if err != nil {
		return d, fmt.Errorf("fill the partition to drop: %w", err)
	}
	d.Rows = tag.RowsAffected()
	parts, err := lifecycle.List(ctx, pool)
	if err != nil {
		return d, err
	}
	for _, p := range parts {
		if p.From.Equal(dataStart.Add(-day)) { // only the new partition: the others are analyzed
			if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+pgx.Identifier{p.Name}.Sanitize()); err != nil {
				return d, fmt.Errorf("vacuum analyze: %w", err)
			}
		}
	}
	// Retention whose cutoff is half a day into the dataset: it drops the
	// day before the dataset and nothing else.
	retention := lifecycle.New(pool, lifecycle.Options{Retention: time.Since(dataStart.Add(day / 2)), Key: key})
	env.progress("scale %s: single writes with a partition of %s rows dropped a third of the way (%s)",
		sizeName(s.Rows), thousands(d.Rows), cfg.Duration)
	var (
		from, to time.Time
		rep      lifecycle.Report
		dropErr  error
	)
	dropped := make(chan struct{})
	go func() {
		defer close(dropped)
		if !duty.Wait(ctx, cfg.Duration/3) {
			return
		}
		from = time.Now()
		dropErr = retryBusy(ctx, func() error { var err error; rep, err = retention.Run(ctx, false); return err })
		to = time.Now()
	}()
	results := timedWrites(ctx, cfg, s.server.Addr)
	<-dropped
	if dropErr != nil {
		return d, dropErr
	}
	if len(rep.Drops) != 1 || rep.Drops[0].Waiting {
		return d, fmt.Errorf("retention dropped %d partitions, want the one made for it", len(rep.Drops))
	}
	d.Took = to.Sub(from)
	for _, r := range results {
		into := &d.Outside
		if !r.sent.Before(from) && r.sent.Before(to) {
			into = &d.During
		}
		into.latencies = append(into.latencies, r.latency)
		if r.ok {
			into.OK++
		} else {
			into.Errors++
		}
	}
	d.During.P50, d.During.P99 = percentiles(d.During.latencies)
	d.Outside.P50, d.Outside.P99 = percentiles(d.Outside.latencies)
	return d, nil
}

// retryBusy calls run until it does not fail with lifecycle.ErrBusy (the
// server's own maintenance run holds the lock for a moment), for a minute
// at most.
func retryBusy(ctx context.Context, run func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := run()
		if !errors.Is(err, lifecycle.ErrBusy) || time.Now().After(deadline) {
			return err
		}
		if !duty.Wait(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// timedWrite is one request of timedWrites.
type timedWrite struct {
	sent    time.Time
	latency time.Duration
	ok      bool
}

// timedWrites sends single writes to addr at the run's concurrency for its
// duration and returns each with the time it was sent.
func timedWrites(ctx context.Context, cfg config, addr string) []timedWrite {
	n := uint64(cfg.Concurrency)
	attacker := vegeta.NewAttacker(vegeta.Workers(n), vegeta.MaxWorkers(n), vegeta.Connections(cfg.Concurrency),
		vegeta.KeepAlive(true), vegeta.MaxBody(0), vegeta.Timeout(requestTimeout))
	stop := context.AfterFunc(ctx, func() { attacker.Stop() })
	defer stop()
	var out []timedWrite
	for r := range attacker.Attack(vegeta.NewStaticTargeter(post(addr, "/system/logs", writeBody)), vegeta.Rate{}, cfg.Duration, "") {
		out = append(out, timedWrite{r.Timestamp, r.Latency, r.Code == http.StatusCreated && r.Error == ""})
	}
	return out
}

// parseSizes parses "1000000,10M,30M".
func parseSizes(v string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(strings.ReplaceAll(part, "_", ""))
		if part == "" {
			continue
		}
		mult := 1
		if m, ok := strings.CutSuffix(strings.ToUpper(part), "M"); ok {
			part, mult = m, 1_000_000
		}
		n, err := strconv.Atoi(part)
		if err != nil || n*mult < minRows {
			return nil, fmt.Errorf("scale size %q: want a number of rows of at least %d, such as 1M", part, minRows)
		}
		if len(out) > 0 && n*mult <= out[len(out)-1] {
			return nil, fmt.Errorf("scale sizes %q: want them growing", v)
		}
		out = append(out, n*mult)
	}
	if len(out) == 0 {
		return nil, errors.New("scale sizes: none given")
	}
	return out, nil
}

// walMeter reads the cluster's WAL position.
type walMeter struct {
	conn *pgx.Conn
	from string
}

func newWALMeter(ctx context.Context, env *benchEnv) (*walMeter, error) {
	conn, err := pgx.Connect(ctx, env.cluster.ConnString("postgres"))
	if err != nil {
		return nil, fmt.Errorf("wal meter: %w", err)
	}
	return &walMeter{conn: conn}, nil
}

func (m *walMeter) close() { _ = m.conn.Close(context.Background()) }

// start remembers the WAL position now.
func (m *walMeter) start(ctx context.Context) {
	_ = m.conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&m.from)
}

// per is the WAL written since start per entry of entries (0 when unknown).
func (m *walMeter) per(ctx context.Context, entries int64) float64 {
	var bytes float64
	if m.from == "" || entries <= 0 ||
		m.conn.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8", m.from).Scan(&bytes) != nil {
		return 0
	}
	return bytes / float64(entries)
}

// reindexEmptyPartitions rebuilds the indexes of every partition of
// system_logs that holds no row: the ones earlier runs wrote into. Their
// rows deleted, their indexes keep the pages the runs filled (the random
// keys' half empty, which VACUUM does not give back): 443 MB on one size
// and 726 MB on another after a few runs, so each size's writes met a
// different index. Rebuilt, every run writes into the same fresh
// partitions (docs/scaling.md).
func reindexEmptyPartitions(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'system_logs'::regclass AND c.relkind = 'r'`)
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	partitions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	for _, part := range partitions {
		var held bool
		if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+part+")").Scan(&held); err != nil {
			return fmt.Errorf("partition %s: %w", part, err)
		}
		if held {
			continue
		}
		if _, err := pool.Exec(ctx, "REINDEX TABLE "+part); err != nil {
			return fmt.Errorf("reindex %s: %w", part, err)
		}
	}
	return nil
}
