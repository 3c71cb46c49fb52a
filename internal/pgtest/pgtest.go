// Package pgtest runs tests against a real PostgreSQL: one throwaway cluster
// per test binary (see Main) and a fresh database per test (see NewDatabase).
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
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

// shared is the cluster Main starts for the test binary. It is package state
// because NewDatabase(t) has no other way to reach it; Main sets it once
// before any test runs.
var shared struct {
	mu      sync.Mutex
	cluster *pgcluster.Cluster
	seq     atomic.Int64
}

// Main starts one throwaway cluster (fsync off) for the whole test binary in a
// temp dir the postgres OS user can traverse, runs m, closes the cluster,
// removes the dir and exits with m's code. Use it as
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// If the cluster cannot start, Main prints the error and exits 1; tests are
// not skipped. When the tests pass, Main fails the binary if goroutines
// started by the tests outlive them (go.uber.org/goleak, with opts); the
// idle connections of http.DefaultTransport are closed first. An interrupt (SIGINT, SIGTERM) also closes the cluster before
// exiting, since PostgreSQL runs in its own process group.
func Main(m *testing.M, opts ...goleak.Option) {
	os.Exit(runMain(m, opts...))
}

// runMain is Main without the exit.
func runMain(m *testing.M, opts ...goleak.Option) int {
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
	shared.cluster = c
	shared.mu.Unlock()
	// What runs now (this Main's signal watcher, the cluster's process
	// waiters) runs until Main returns; anything else left after the tests
	// is a leak.
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

// NewDatabase creates a fresh, empty database with a unique name on the
// cluster started by Main and returns its connection string. The database is
// dropped (WITH (FORCE)) at t.Cleanup. It is safe for parallel tests. It
// fails the test if Main is not in use or the database cannot be created.
func NewDatabase(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	c := shared.cluster
	shared.mu.Unlock()
	if c == nil {
		t.Fatal("pgtest.NewDatabase needs the cluster of pgtest.Main: add func TestMain(m *testing.M) { pgtest.Main(m) }")
	}
	name := fmt.Sprintf("test_%d_%s", shared.seq.Add(1), strings.ToLower(rand.Text()[:8]))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.CreateDatabase(ctx, name); err != nil {
		t.Fatalf("new database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := dropDatabase(ctx, c, name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return c.ConnString(name)
}

// dropDatabase drops name, disconnecting any sessions still using it.
func dropDatabase(ctx context.Context, c *pgcluster.Cluster, name string) error {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	return nil
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
