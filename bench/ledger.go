package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/duty"
)

// tailSubscribers is the number of live-tail clients in the tail run.
const tailSubscribers = 100

// sealInterval is the servers' seal interval in the ledger runs (the default).
const sealInterval = 250 * time.Millisecond

// drainTimeout bounds how long the sequencer may take to seal what a run
// wrote, or the dataset, before the benchmark gives up.
const drainTimeout = 30 * time.Minute

// throughput is one pass over a number of entries.
type throughput struct {
	Entries int64
	Elapsed time.Duration
}

// PerSecond is entries per second.
func (t throughput) PerSecond() float64 {
	if t.Elapsed <= 0 {
		return 0
	}
	return float64(t.Entries) / t.Elapsed.Seconds()
}

// ledgerResults are the sealed trail's runs (docs/ledger.md, docs/follow.md).
type ledgerResults struct {
	// Write and Batch are the full stack with the sequencer sealing every
	// sealInterval; WritePaused and BatchPaused the same with it paused
	// (--seal-interval 0); WriteTail the single writes with tailSubscribers
	// live-tail clients connected.
	Write, WritePaused, WriteTail, Batch, BatchPaused stats
	// WriteLag and BatchLag are every entry's seal lag in the sealing
	// runs, from the commit of its write to the commit of the seal pass
	// that gave it its seq (both PostgreSQL's commit timestamps);
	// WriteStampLag the same from the entry's timestamp (the server's
	// receipt of the write).
	WriteLag, WriteStampLag, BatchLag []time.Duration
	// Tail is the latency of the tail run's sampled deliveries (see
	// latencySample), from the entry's timestamp to the subscriber reading
	// its event; TailDelivered counts every delivery, TailMissed the
	// deliveries that never came (an overflow, a dropped stream).
	Tail                      []time.Duration
	TailDelivered, TailMissed int64
	// TailParts splits the first subscriber's deliveries in the tail run
	// into where the time went: the entry's timestamp to its write's
	// commit, that commit to its seal's, and the seal's commit to the
	// event read.
	TailParts tailParts
	// Rows is the sealed dataset's size; Get and Proof read entries of it.
	Rows       int64
	Get, Proof stats
	// Verify is valhalla verify over the dataset, Feed reading the same
	// feed with the same client and page size without verifying.
	Verify, Feed throughput
	// Export is GET /system/logs/export (NDJSON) of the dataset, Copy
	// PostgreSQL's COPY of the same join; ExportRSS the server's peak RSS
	// after the export, from a fresh start.
	Export, Copy throughput
	ExportRSS    int64
	// Sink is a webhook sink's delivery of the dataset's backlog to a
	// local receiver that verifies every signature.
	Sink throughput
}

// runLedger measures what sealing costs the writes, the seal lag, the live
// tail's delivery, and reading the sealed dataset: proofs, verify, export.
func runLedger(ctx context.Context, cfg config, env *benchEnv) (ledgerResults, error) {
	var res ledgerResults
	keyFile := filepath.Join(env.dir, "ledger.key")
	on, err := openFresh(ctx, env, "bench_ledger_on")
	if err != nil {
		return res, err
	}
	defer on.Close()
	off, err := openFresh(ctx, env, "bench_ledger_off")
	if err != nil {
		return res, err
	}
	defer off.Close()
	sealing, err := startLedgerServer(ctx, env, env.cluster.ConnString("bench_ledger_on"), keyFile, sealInterval, "server-ledger-on.log")
	if err != nil {
		return res, err
	}
	defer sealing.Stop()
	paused, err := startLedgerServer(ctx, env, env.cluster.ConnString("bench_ledger_off"), keyFile, 0, "server-ledger-off.log")
	if err != nil {
		return res, err
	}
	defer paused.Stop()
	reset := func(ctx context.Context) error {
		for _, p := range []*pgxpool.Pool{on, off} {
			if _, err := p.Exec(ctx, "TRUNCATE system_logs, ledger_queue"); err != nil {
				return fmt.Errorf("truncate: %w", err)
			}
			if _, err := p.Exec(ctx, "CHECKPOINT"); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
		}
		return nil
	}
	var failure error
	fail := func(err error) {
		if failure == nil && err != nil {
			failure = err
		}
	}
	withLags := func(srv *process, path, body string, lags, stamps *[]time.Duration, subscribers int) func(load) stats {
		target := post(srv.Addr, path, body)
		calls := 0
		return func(l load) stats {
			calls++
			warm := calls == 1 && cfg.Warmup > 0
			var t *tail
			if subscribers > 0 {
				var err error
				if t, err = startTail(ctx, srv.Addr, subscribers); err != nil {
					fail(err)
					return stats{}
				}
			}
			s := l.http(ctx, target, http.StatusCreated)
			if err := waitDrained(ctx, on); err != nil {
				fail(err)
			}
			if t != nil {
				want := s.OK
				if path != "/system/logs" {
					want *= batchSize
				}
				got, delivered, missed := t.stop(want)
				if !warm {
					res.Tail = append(res.Tail, got...)
					res.TailDelivered += delivered
					res.TailMissed += missed
					fail(res.TailParts.add(ctx, on, t.subs[0].arrivals))
				}
				return s
			}
			if !warm {
				commit, stamp, err := sealLags(ctx, on)
				fail(err)
				*lags = append(*lags, commit...)
				if stamps != nil {
					*stamps = append(*stamps, stamp...)
				}
			}
			return s
		}
	}
	plain := func(srv *process, path, body string) func(load) stats {
		target := post(srv.Addr, path, body)
		return func(l load) stats { return l.http(ctx, target, http.StatusCreated) }
	}
	{
		err := interleave(ctx, cfg, env.meter, env.progress, reset,
			contender{"sealed write: sealing on", cfg.Concurrency, sealing.PID(),
				withLags(sealing, "/system/logs", writeBody, &res.WriteLag, &res.WriteStampLag, 0), &res.Write},
			contender{"sealed write: sequencer paused", cfg.Concurrency, paused.PID(),
				plain(paused, "/system/logs", writeBody), &res.WritePaused},
			contender{fmt.Sprintf("sealed write: sealing on, %d tail subscribers", tailSubscribers), cfg.Concurrency, sealing.PID(),
				withLags(sealing, "/system/logs", writeBody, nil, nil, tailSubscribers), &res.WriteTail},
		)
		if err = errors.Join(err, failure); err != nil {
			return res, err
		}
	}
	{
		body := batchBody()
		err := interleave(ctx, cfg, env.meter, env.progress, reset,
			contender{"sealed batch: sealing on", cfg.Concurrency, sealing.PID(),
				withLags(sealing, "/system/logs/batch", body, &res.BatchLag, nil, 0), &res.Batch},
			contender{"sealed batch: sequencer paused", cfg.Concurrency, paused.PID(),
				plain(paused, "/system/logs/batch", body), &res.BatchPaused},
		)
		if err = errors.Join(err, failure); err != nil {
			return res, err
		}
	}
	for _, p := range []*process{sealing, paused} {
		if err := p.Stop(); err != nil {
			return res, err
		}
	}
	if err := res.readDataset(ctx, cfg, env, keyFile); err != nil {
		return res, err
	}
	return res, nil
}

// openFresh recreates database name, migrates it and opens a pool on it.
func openFresh(ctx context.Context, env *benchEnv, name string) (*pgxpool.Pool, error) {
	if err := env.recreateDatabase(ctx, name); err != nil {
		return nil, err
	}
	pool, err := database.Open(ctx, env.cluster.ConnString(name), 30*time.Second, nil)
	if err != nil {
		return nil, err
	}
	if _, err := database.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// startLedgerServer runs valhalla serve on url with the benchmark's ledger
// key and the given seal interval (0: the sequencer paused), without the
// per-token limits: the tail run holds 100 streams and 32 writes on one
// token, and these runs measure the ledger, not the limiter.
func startLedgerServer(ctx context.Context, env *benchEnv, url, keyFile string, interval time.Duration, logName string) (*process, error) {
	return startProcess(ctx, "valhalla serve", env.cfg.Server,
		[]string{"serve", "--addr", "127.0.0.1:0", "--database-url", url,
			"--ledger-key-file", keyFile, "--seal-interval", interval.String()},
		append(os.Environ(), "VALHALLA_BOOTSTRAP_TOKEN="+benchToken,
			"VALHALLA_TOKEN_RATE=0", "VALHALLA_TOKEN_ENTRY_RATE=0", "VALHALLA_TOKEN_IN_FLIGHT=0", "VALHALLA_TOKEN_READ_RATE=0",
			"VALHALLA_DB_READ_CONNS_PER_TOKEN=8"),
		filepath.Join(env.dir, logName))
}

// waitDrained polls until no entry waits to be sealed.
func waitDrained(ctx context.Context, pool *pgxpool.Pool) error {
	deadline := time.Now().Add(drainTimeout)
	for {
		var waiting int64
		if err := pool.QueryRow(ctx, "SELECT coalesce(sum(cardinality(log_ids)), 0) FROM ledger_queue").Scan(&waiting); err != nil {
			return fmt.Errorf("ledger queue: %w", err)
		}
		if waiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ledger: %d entries still unsealed after %s", waiting, drainTimeout)
		}
		if !duty.Wait(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// sealLags returns the seal lag of every entry in system_logs: from the
// commit of its write to the commit of the first checkpoint that covers
// it (the seal pass's), and from its timestamp to the same.
func sealLags(ctx context.Context, pool *pgxpool.Pool) (commit, stamp []time.Duration, err error) {
	rows, err := pool.Query(ctx, `
SELECT extract(epoch FROM pg_xact_commit_timestamp(c.x) - pg_xact_commit_timestamp(s.xmin)),
       extract(epoch FROM pg_xact_commit_timestamp(c.x) - s."timestamp")
FROM system_logs s
JOIN ledger_leaves e ON e.log_id = s.id
CROSS JOIN LATERAL (SELECT k.xmin AS x FROM ledger_checkpoints k WHERE k.tree_size >= e.seq ORDER BY k.tree_size LIMIT 1) c`)
	if err != nil {
		return nil, nil, fmt.Errorf("seal lags: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c, s float64
		if err := rows.Scan(&c, &s); err != nil {
			return nil, nil, fmt.Errorf("seal lags: %w", err)
		}
		commit = append(commit, time.Duration(c*float64(time.Second)))
		stamp = append(stamp, time.Duration(s*float64(time.Second)))
	}
	return commit, stamp, rows.Err()
}

// tail is tailSubscribers live-tail clients reading one server's stream.
type tail struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	subs   []*subscriber
}

// subscriber is one client: what it received and how late.
type subscriber struct {
	got       atomic.Int64
	latencies []time.Duration // written by its goroutine only, read after it ends
	// arrivals are when each event was read, by seq; kept by the first
	// subscriber only (nil for the others).
	arrivals map[int64]time.Time
}

// startTail connects n subscribers to addr's live tail (new entries only)
// and returns once every one has its response.
func startTail(ctx context.Context, addr string, n int) (*tail, error) {
	ctx, cancel := context.WithCancel(ctx)
	t := &tail{cancel: cancel}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, ReadBufferSize: 256 << 10}}
	connected := make(chan error, n)
	for range n {
		s := &subscriber{}
		if len(t.subs) == 0 {
			s.arrivals = map[int64]time.Time{}
		}
		t.subs = append(t.subs, s)
		t.wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/system/logs/stream", nil)
			if err != nil {
				connected <- err
				return
			}
			req.Header = authHeader()
			req.Header.Set("Accept", "text/event-stream")
			resp, err := client.Do(req)
			if err != nil {
				connected <- fmt.Errorf("tail: %w", err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				connected <- fmt.Errorf("tail: %s", resp.Status)
				return
			}
			connected <- nil
			s.read(resp.Body)
		})
	}
	for range n {
		if err := <-connected; err != nil {
			t.cancel()
			t.wg.Wait()
			return nil, err
		}
	}
	return t, nil
}

// timestampField precedes the entry's timestamp in an event's data.
var timestampField = []byte(`"timestamp":"`)

// latencySample is which entries' latency the subscribers time: those
// whose seq is a multiple of it. Every delivery is counted; timing each
// one (finding and parsing its timestamp) took the benchmark's 100
// subscribers a sixth of a core at 5,000 writes a second, on the cores the
// server being measured runs on.
const latencySample = 8

// read counts the entry events on body until it ends, and records the
// latency of those latencySample picks. It reads in large chunks and looks
// only at the events' id and event lines, and at the timestamp of the
// sampled ones.
func (s *subscriber) read(body io.Reader) {
	buf := make([]byte, 0, 512<<10)
	for {
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		at := time.Now()
		// The complete events: up to the last blank line.
		end := bytes.LastIndex(buf, []byte("\n\n"))
		if end >= 0 {
			s.events(buf[:end+2], at)
			rest := copy(buf, buf[end+2:])
			buf = buf[:rest]
		}
		if err != nil {
			return
		}
		if len(buf) == cap(buf) { // an event larger than the buffer
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// events handles the complete events in b, read at at, in one pass: each
// event is found by the blank line that ends it (a '\n' is rare in an
// event, so the search skips through its data), and only an entry event's
// id line, and a sampled one's timestamp, are looked at.
func (s *subscriber) events(b []byte, at time.Time) {
	var n int64
	for len(b) > 0 {
		end := bytes.Index(b, []byte("\n\n"))
		if end < 0 {
			end = len(b)
		}
		ev := b[:end]
		b = b[min(end+2, len(b)):]
		id, ok := bytes.CutPrefix(ev, []byte("id: "))
		if !ok {
			continue
		}
		nl := bytes.IndexByte(id, '\n')
		if nl < 0 {
			continue
		}
		rest, ok := bytes.CutPrefix(id[nl+1:], []byte("event: entry\n"))
		if !ok {
			continue
		}
		n++
		seq, err := strconv.ParseInt(string(id[:nl]), 10, 64)
		if err != nil || seq%latencySample != 0 {
			continue
		}
		i := bytes.Index(rest, timestampField)
		if i < 0 {
			continue
		}
		rest = rest[i+len(timestampField):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
		if err != nil {
			continue
		}
		s.latencies = append(s.latencies, at.Sub(ts))
		if s.arrivals != nil {
			s.arrivals[seq] = at
		}
	}
	s.got.Add(n)
}

// tailParts are the parts of the tail's deliveries (see TailParts).
type tailParts struct {
	Commit, Seal, Deliver []time.Duration
}

// add reads the commit times of the entries arrivals names from pool and
// adds their parts.
func (p *tailParts) add(ctx context.Context, pool *pgxpool.Pool, arrivals map[int64]time.Time) error {
	seqs := make([]int64, 0, len(arrivals))
	for seq := range arrivals {
		seqs = append(seqs, seq)
	}
	rows, err := pool.Query(ctx, `
SELECT e.seq, s."timestamp", pg_xact_commit_timestamp(s.xmin), pg_xact_commit_timestamp(c.x)
FROM ledger_leaves e
JOIN system_logs s ON s.id = e.log_id AND s."timestamp" = e.log_timestamp
CROSS JOIN LATERAL (SELECT k.xmin AS x FROM ledger_checkpoints k WHERE k.tree_size >= e.seq ORDER BY k.tree_size LIMIT 1) c
WHERE e.seq = ANY($1)`, seqs)
	if err != nil {
		return fmt.Errorf("tail parts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var stamp, committed, sealed time.Time
		if err := rows.Scan(&seq, &stamp, &committed, &sealed); err != nil {
			return fmt.Errorf("tail parts: %w", err)
		}
		p.Commit = append(p.Commit, committed.Sub(stamp))
		p.Seal = append(p.Seal, sealed.Sub(committed))
		p.Deliver = append(p.Deliver, arrivals[seq].Sub(sealed))
	}
	return rows.Err()
}

// stop waits (up to 30 s) until every subscriber has received want
// entries, disconnects them, and returns the latencies and how many
// deliveries never came.
func (t *tail) stop(want int64) (latencies []time.Duration, delivered, missed int64) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		all := true
		for _, s := range t.subs {
			if s.got.Load() < want {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.cancel()
	t.wg.Wait()
	for _, s := range t.subs {
		latencies = append(latencies, s.latencies...)
		delivered += s.got.Load()
		missed += max(want-s.got.Load(), 0)
	}
	return latencies, delivered, missed
}

// readDataset seals the list runs' dataset (once; it stays sealed in the
// data dir) and measures reading it: a proof against a plain read, valhalla
// verify against reading the feed, the export against COPY.
func (res *ledgerResults) readDataset(ctx context.Context, cfg config, env *benchEnv, keyFile string) error {
	url, _, err := prepareListDatabase(ctx, cfg, env)
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, url, 30*time.Second, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	var rows, size, queued int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM system_logs), (SELECT coalesce(max(last_seq), 0) FROM ledger_blocks),
		(SELECT count(*) FROM ledger_queue)`).Scan(&rows, &size, &queued); err != nil {
		return fmt.Errorf("dataset ledger: %w", err)
	}
	_, keyErr := os.Stat(keyFile)
	if rows != size || queued != 0 || keyErr != nil {
		env.progress("sealing the %d rows of the dataset (once; it stays sealed in the data dir)", rows)
		start := time.Now()
		if _, err := pool.Exec(ctx, `TRUNCATE ledger_blocks, ledger_checkpoints, ledger_queue, ledger_retired_ids`); err != nil {
			return fmt.Errorf("dataset ledger: %w", err)
		}
		// One queue row per 1,000 entries, as batches of the API queue
		// them; without leaf hashes, so the sequencer hashes the rows.
		if _, err := pool.Exec(ctx, `WITH q AS (
INSERT INTO ledger_queue (log_ids, log_timestamps, leaf_hashes)
SELECT array_agg(id ORDER BY "timestamp", id), array_agg("timestamp" ORDER BY "timestamp", id), array_agg(NULL::bytea)
FROM (SELECT id, "timestamp", (row_number() OVER (ORDER BY "timestamp", id) - 1) / 1000 AS part FROM system_logs) s
GROUP BY part ORDER BY part
RETURNING id, log_ids)
UPDATE system_logs s SET ledger_tx = q.id FROM q CROSS JOIN LATERAL unnest(q.log_ids) AS u (id) WHERE s.id = u.id`); err != nil {
			return fmt.Errorf("dataset ledger: %w", err)
		}
		srv, err := startLedgerServer(ctx, env, url, keyFile, sealInterval, "server-ledger-seal.log")
		if err != nil {
			return err
		}
		err = waitDrained(ctx, pool)
		if stopErr := srv.Stop(); err == nil {
			err = stopErr
		}
		if err != nil {
			return err
		}
		env.progress("sealed in %s (%.0f entries/s, one pass an interval)", time.Since(start).Round(time.Second),
			float64(rows)/time.Since(start).Seconds())
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) system_logs, ledger_blocks"); err != nil {
			return fmt.Errorf("vacuum analyze: %w", err)
		}
	}
	res.Rows = rows
	srv, err := startLedgerServer(ctx, env, url, keyFile, sealInterval, "server-ledger-read.log")
	if err != nil {
		return err
	}
	defer srv.Stop()

	// Export first, from a fresh process, so its peak RSS is the export's.
	env.progress("export of %d entries against COPY", rows)
	if res.Copy, err = copyDataset(ctx, pool); err != nil {
		return err
	}
	if res.Export, err = export(ctx, srv.Addr); err != nil {
		return err
	}
	if res.ExportRSS, err = srv.PeakRSS(); err != nil {
		return err
	}

	targets, err := readTargets(ctx, pool, srv.Addr)
	if err != nil {
		return err
	}
	err = interleave(ctx, cfg, env.meter, env.progress, nil,
		contender{"dataset: GET /system/logs/{id}", cfg.ListConcurrency, srv.PID(),
			func(l load) stats { return l.httpTargets(ctx, targets.get, http.StatusOK) }, &res.Get},
		contender{"dataset: GET /system/logs/{id}/proof", cfg.ListConcurrency, srv.PID(),
			func(l load) stats { return l.httpTargets(ctx, targets.proof, http.StatusOK) }, &res.Proof},
	)
	if err != nil {
		return err
	}
	env.progress("reading the feed of %d entries", rows)
	if res.Feed, err = readFeed(ctx, srv.Addr); err != nil {
		return err
	}
	env.progress("valhalla verify over %d entries", rows)
	if res.Verify, err = runVerify(ctx, env, srv.Addr, keyFile, rows); err != nil {
		return err
	}
	env.progress("a webhook sink catching up with the %d entries, for %s", rows, 2*cfg.Duration)
	if res.Sink, err = sinkThroughput(ctx, env, url); err != nil {
		return err
	}
	return srv.Stop()
}

// readTargetsCount is how many entries the get and proof runs spread over.
const readTargetsCount = 2000

// datasetTargets are requests for random sealed entries of the dataset.
type datasetTargets struct{ get, proof []vegeta.Target }

func readTargets(ctx context.Context, pool *pgxpool.Pool, addr string) (datasetTargets, error) {
	var t datasetTargets
	rows, err := pool.Query(ctx, `SELECT log_id::text FROM ledger_leaves
		WHERE seq IN (SELECT 1 + floor(random() * (SELECT max(last_seq) FROM ledger_blocks))::bigint FROM generate_series(1, $1))`, readTargetsCount)
	if err != nil {
		return t, fmt.Errorf("dataset ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return t, fmt.Errorf("dataset ids: %w", err)
		}
		base := "http://" + addr + "/system/logs/" + id
		t.get = append(t.get, vegeta.Target{Method: http.MethodGet, URL: base, Header: authHeader()})
		t.proof = append(t.proof, vegeta.Target{Method: http.MethodGet, URL: base + "/proof", Header: authHeader()})
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("dataset ids: %w", err)
	}
	if len(t.get) == 0 {
		return t, errors.New("dataset ids: none sealed")
	}
	return t, nil
}

// copyDataset is COPY of the join the export reads, in seq order, to nowhere.
func copyDataset(ctx context.Context, pool *pgxpool.Pool) (throughput, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return throughput{}, err
	}
	defer conn.Release()
	start := time.Now()
	tag, err := conn.Conn().PgConn().CopyTo(ctx, io.Discard, `COPY (SELECT e.seq, e.leaf_hash, s.* FROM ledger_leaves e
		JOIN system_logs s ON s.id = e.log_id AND s."timestamp" = e.log_timestamp ORDER BY e.seq) TO STDOUT`)
	if err != nil {
		return throughput{}, fmt.Errorf("copy dataset: %w", err)
	}
	return throughput{Entries: tag.RowsAffected(), Elapsed: time.Since(start)}, nil
}

// export reads GET /system/logs/export (NDJSON) to the end, counting entries.
func export(ctx context.Context, addr string) (throughput, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/system/logs/export?format=ndjson", nil)
	if err != nil {
		return throughput{}, err
	}
	req.Header = authHeader()
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return throughput{}, fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return throughput{}, fmt.Errorf("export: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var n int64
	trailer := false
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte(`{"trailer"`)):
			trailer = true
		case bytes.HasPrefix(line, []byte(`{"error"`)):
			return throughput{}, fmt.Errorf("export failed: %s", line)
		case !bytes.HasPrefix(line, []byte(`{"missing"`)):
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return throughput{}, fmt.Errorf("export: %w", err)
	}
	if !trailer {
		return throughput{}, errors.New("export: no trailer")
	}
	return throughput{Entries: n, Elapsed: time.Since(start)}, nil
}

// verifyPage is the page size valhalla verify reads the feed with.
const verifyPage = 1000

// readFeed reads the whole feed with the generated client, as valhalla
// verify does, without verifying anything.
func readFeed(ctx context.Context, addr string) (throughput, error) {
	client, err := api.NewClientWithResponses("http://"+addr, api.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+benchToken)
		return nil
	}))
	if err != nil {
		return throughput{}, err
	}
	start := time.Now()
	var after, n int64
	limit := int32(verifyPage)
	for {
		resp, err := client.GetSystemLogFeedWithResponse(ctx, &api.GetSystemLogFeedParams{After: &after, Limit: &limit})
		if err != nil {
			return throughput{}, fmt.Errorf("feed: %w", err)
		}
		if resp.JSON200 == nil {
			return throughput{}, fmt.Errorf("feed: %s", resp.Status())
		}
		page := resp.JSON200
		n += int64(len(page.Items))
		if len(page.Items) == 0 || page.NextAfter == after {
			break
		}
		after = page.NextAfter
	}
	return throughput{Entries: n, Elapsed: time.Since(start)}, nil
}

// runVerify runs valhalla verify against addr and times it.
func runVerify(ctx context.Context, env *benchEnv, addr, keyFile string, size int64) (throughput, error) {
	out, err := exec.CommandContext(ctx, env.cfg.Server, "ledger", "key", "--ledger-key-file", keyFile).Output()
	if err != nil {
		return throughput{}, fmt.Errorf("valhalla ledger key: %w", err)
	}
	verifier := strings.TrimSpace(string(out))
	cmd := exec.CommandContext(ctx, env.cfg.Server, "verify", "--server", "http://"+addr, "--key", verifier)
	cmd.Env = append(os.Environ(), "VALHALLA_TOKEN="+benchToken)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return throughput{}, fmt.Errorf("valhalla verify: %w: %s%s", err, stdout.String(), stderr.String())
	}
	return throughput{Entries: size, Elapsed: elapsed}, nil
}
