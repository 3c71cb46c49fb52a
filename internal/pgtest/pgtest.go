// Package pgtest runs tests against a real PostgreSQL: one throwaway cluster
// per test binary (see Main), or the server DATABASE_URL names, and a fresh
// database per test (see NewDatabase).
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/valhalla-platform/valhalla/internal/pgcluster"
)

// timeout bounds starting, stopping and talking to a cluster.
const timeout = 2 * time.Minute

// shared is the server Main chose for the test binary. It is package state
// because NewDatabase(t) has no other way to reach it; Main sets it once
// before any test runs.
var shared struct {
	mu     sync.Mutex
	server *server
	seq    atomic.Int64
}

// server is where NewDatabase creates databases.
type server struct {
	// admin is the connection string CREATE and DROP DATABASE run on.
	admin string
	// connString returns the connection string of database name.
	connString func(name string) string
}

// clusterServer is the server of a local cluster.
func clusterServer(c *pgcluster.Cluster) *server {
	return &server{admin: c.ConnString("postgres"), connString: c.ConnString}
}

// urlServer is the server databaseURL names; its databases are reached as
// databaseURL with the database name replaced.
func urlServer(databaseURL string) *server {
	return &server{admin: databaseURL, connString: func(name string) string { return withDatabase(databaseURL, name) }}
}

// withDatabase returns connString (a postgres:// URL or libpq keyword/value
// string) naming database instead of the one it names.
func withDatabase(connString, database string) string {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		if u, err := url.Parse(connString); err == nil {
			u.Path, u.RawPath = "/"+database, ""
			q := u.Query()
			q.Del("dbname")
			q.Del("database")
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	// In a keyword/value string the last of a repeated keyword wins.
	return connString + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(database) + "'"
}

// Main runs m against one PostgreSQL server for the whole test binary and
// exits with m's code. Use it as
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// With DATABASE_URL set, the server is the one it names: each test gets a
// database of its own there (its role needs CREATEDB), dropped after the
// test; nothing else on that server is touched. Otherwise Main starts a
// throwaway cluster (fsync off) in a temp dir the postgres OS user can
// traverse, and closes it and removes the dir at the end. Tests that start
// clusters of their own (StartCluster) need the PostgreSQL server binaries
// either way.
//
// If the server cannot be reached or the cluster cannot start, Main prints
// the error and exits 1; tests are not skipped. When the tests pass, Main
// fails the binary if goroutines started by the tests outlive them
// (go.uber.org/goleak, with opts); the idle connections of
// http.DefaultTransport are closed first. An interrupt (SIGINT, SIGTERM)
// also closes the cluster before exiting, since PostgreSQL runs in its own
// process group.
func Main(m *testing.M, opts ...goleak.Option) {
	os.Exit(runMain(m, os.Getenv, opts...))
}

// runMain is Main without the exit.
func runMain(m *testing.M, getenv func(string) string, opts ...goleak.Option) int {
	if databaseURL := getenv("DATABASE_URL"); databaseURL != "" {
		srv, err := openURLServer(databaseURL)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			return 1
		}
		shared.mu.Lock()
		shared.server = srv
		shared.mu.Unlock()
		return runTests(m, opts)
	}

	// PostgreSQL runs in its own process group, so an interrupt reaches only
	// this process: catch it to stop the cluster instead of leaking it.
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	dir, err := os.MkdirTemp("", "vhl-pgtest-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: create cluster dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithTimeout(sigCtx, timeout)
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	var closeOnce sync.Once
	closeCluster := func() {
		closeOnce.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if err := c.Close(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			}
			_ = os.RemoveAll(dir)
		})
	}
	defer closeCluster()

	finished := make(chan struct{})
	defer close(finished) // runs before stopSignals cancels sigCtx
	go func() {
		select {
		case <-finished:
		case <-sigCtx.Done():
			select {
			case <-finished:
			default:
				closeCluster()
				os.Exit(1)
			}
		}
	}()

	shared.mu.Lock()
	shared.server = clusterServer(c)
	shared.mu.Unlock()
	return runTests(m, opts)
}

// runTests runs the tests and, when they pass, checks for leaks. What runs
// now (Main's signal watcher, the cluster's process waiters) runs until
// Main returns; anything else left after the tests is a leak.
func runTests(m *testing.M, opts []goleak.Option) int {
	opts = append(opts, goleak.IgnoreCurrent())
	code := m.Run()
	if code == 0 {
		code = checkLeaks(opts)
	}
	return code
}

// checkLeaks reports the goroutines that outlived the tests and returns 1
// when there are any. The idle keep-alive connections of
// http.DefaultTransport, which tests share, are closed first: they are
// reused, not leaked.
func checkLeaks(opts []goleak.Option) int {
	if tr, ok := http.DefaultTransport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
	if err := goleak.Find(opts...); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: goroutines leaked by the tests: %v\n", err)
		return 1
	}
	return 0
}

// openURLServer checks that databaseURL reaches a server and returns it.
func openURLServer(databaseURL string) (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	if err := conn.Ping(ctx); err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	return urlServer(databaseURL), nil
}

// NewDatabase creates a fresh, empty database with a unique name on the
// server of Main (its cluster, or DATABASE_URL's server) and returns its
// connection string. The database is dropped (WITH (FORCE)) at t.Cleanup.
// It is safe for parallel tests. It fails the test if Main is not in use or
// the database cannot be created.
func NewDatabase(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	srv := shared.server
	shared.mu.Unlock()
	if srv == nil {
		t.Fatal("pgtest.NewDatabase needs the server of pgtest.Main: add func TestMain(m *testing.M) { pgtest.Main(m) }")
	}
	return newDatabase(t, srv)
}

// newDatabase is NewDatabase on srv.
func newDatabase(t testing.TB, srv *server) string {
	t.Helper()
	name := fmt.Sprintf("test_%d_%s", shared.seq.Add(1), strings.ToLower(rand.Text()[:8]))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("new database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		// WITH (FORCE) disconnects any sessions still using it.
		if err := srv.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return srv.connString(name)
}

// exec runs one statement on the server's admin connection string.
func (s *server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// TempDir returns a fresh directory, removed at cleanup like t.TempDir, that
// the postgres OS user can traverse (mode 0755 under os.TempDir). It fails the
// test if the directory cannot be created.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vhl-test-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove temp dir: %v", err)
		}
	})
	return dir
}

// StartCluster starts a dedicated cluster (fsync off) in TempDir(t) and closes
// it at cleanup, for tests that stop and start the server. Cluster log
// records go to the test output. It fails the test if the cluster cannot
// start or close.
func StartCluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	dir := TempDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("close cluster: %v", err)
		}
	})
	return c
}

// testLogger returns a logger that writes to the test output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}
