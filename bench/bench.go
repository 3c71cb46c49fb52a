package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/pgcluster"
)

// noiseWindow is how long the idle machine is watched before the runs.
const noiseWindow = 2 * time.Second

// benchEnv is what every part of a run shares: the data dir, the cluster,
// the CPU meter and the progress log.
type benchEnv struct {
	cfg     config
	dir     string
	cluster *pgcluster.Cluster
	meter   cpuMeter
	log     io.Writer
	start   time.Time
}

// results is everything the report shows.
type results struct {
	Machine    machine
	Writes     writeResults
	Lists      listResults
	Plans      planResult
	Validation []goBenchmark
	Ledger     ledgerResults
	Scale      scaleResults
}

// benchmark runs every part cfg asks for and prints the report to stdout;
// progress goes to stderr.
func benchmark(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if cfg.runs("write") || cfg.runs("batch") || cfg.runs("list") || cfg.runs("ledger") || cfg.runs("scale") {
		if _, err := os.Stat(cfg.Server); err != nil {
			return fmt.Errorf("server binary: %w (build it with make build)", err)
		}
	}
	env := &benchEnv{cfg: cfg, dir: dir, log: stderr, start: time.Now()}

	var res results
	env.progress("watching the idle machine for %s", noiseWindow)
	res.Machine = describeMachine(ctx, env.meter, noiseWindow)

	if cfg.runs("write") || cfg.runs("batch") || cfg.runs("list") || cfg.runs("ledger") || cfg.runs("scale") {
		env.progress("starting PostgreSQL (fsync on) in %s", dir)
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{
			Dir:    dir,
			Fsync:  true,
			Logger: slog.New(slog.DiscardHandler),
			// Room for the server's, the hand-written server's and the
			// floor's pools, and a connection per worker for the ceiling.
			Settings: []string{fmt.Sprintf("max_connections=%d", 4*database.DefaultMaxConns+2*cfg.Concurrency+20)},
		})
		if err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := cluster.Close(stopCtx); err != nil {
				env.progress("stop PostgreSQL: %v", err)
			}
		}()
		env.cluster = cluster
		env.meter.postmasterPID = postmasterPID(cluster.DataDir())
		res.Machine.PostgreSQL = postgresVersion(ctx, cluster)
	}
	if cfg.runs("write") || cfg.runs("batch") {
		if res.Writes, err = runWrites(ctx, cfg, env); err != nil {
			return fmt.Errorf("writes: %w", err)
		}
	}
	if cfg.runs("list") {
		if res.Lists, err = runLists(ctx, cfg, env); err != nil {
			return fmt.Errorf("lists: %w", err)
		}
	}
	if cfg.runs("ledger") {
		if res.Ledger, err = runLedger(ctx, cfg, env); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
	}
	if cfg.runs("scale") {
		if res.Scale, err = runScale(ctx, cfg, env); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	if cfg.runs("plans") {
		env.progress("plans: go test -run %s", planTest)
		if res.Plans, err = runPlanTest(ctx, stderr); err != nil {
			return fmt.Errorf("plans: %w", err)
		}
	}
	if cfg.runs("validation") {
		env.progress("validation: go test -bench")
		if res.Validation, err = runGoBenchmarks(ctx, stderr); err != nil {
			return fmt.Errorf("validation: %w", err)
		}
	}
	env.progress("done")
	report(stdout, cfg, res)
	return nil
}

// progress logs one line of progress with the time since start.
func (e *benchEnv) progress(format string, args ...any) {
	fmt.Fprintf(e.log, "bench %6.1fs  %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, args...))
}

// benchToken is the all-scopes token the benchmark's servers bootstrap and
// its requests send: the full stack authenticates every request, as in
// production. It only ever guards the benchmark's throwaway data.
const benchToken = "vhl_benchtoken1_notasecretjustforthebenchmark0"

// authHeader is the header every request to the full stack carries.
func authHeader() http.Header {
	return http.Header{"Authorization": []string{"Bearer " + benchToken}}
}

// startServer runs valhalla serve on a free port against url, logging to
// logName in the data dir. Its one token stands for every client of the
// list runs, which read thousands of pages a second, several at once, to
// measure the read path: its read rate is off and it may hold every read
// connection (both are fair-use bounds per token, which would cap them).
func (e *benchEnv) startServer(ctx context.Context, url, logName string, flags ...string) (*process, error) {
	return startProcess(ctx, "valhalla serve", e.cfg.Server,
		append([]string{"serve", "--addr", "127.0.0.1:0", "--database-url", url}, flags...),
		append(os.Environ(), "VALHALLA_BOOTSTRAP_TOKEN="+benchToken,
			"VALHALLA_TOKEN_READ_RATE=0", "VALHALLA_DB_READ_CONNS_PER_TOKEN=8"), filepath.Join(e.dir, logName))
}

// recreateDatabase drops name if it exists and creates it empty.
func (e *benchEnv) recreateDatabase(ctx context.Context, name string) error {
	if err := e.dropDatabase(ctx, name); err != nil {
		return err
	}
	return e.cluster.CreateDatabase(ctx, name)
}

// dropDatabase drops name if it exists, disconnecting its sessions.
func (e *benchEnv) dropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, e.cluster.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// postgresVersion is the server's version string, or why it is unknown.
func postgresVersion(ctx context.Context, cluster *pgcluster.Cluster) string {
	conn, err := pgx.Connect(ctx, cluster.ConnString("postgres"))
	if err != nil {
		return "unknown: " + err.Error()
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "unknown: " + err.Error()
	}
	return v
}
