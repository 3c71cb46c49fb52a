package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// TestEmbeddedDefault: with no DATABASE_URL, serve starts a local cluster
// under the data dir, keeps it across restarts, and stops it on exit.
func TestEmbeddedDefault(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(pgtest.TempDir(t), "data")
	env := map[string]string{"VALHALLA_DATA_DIR": dataDir, "VALHALLA_BOOTSTRAP_TOKEN": auth.Mint()}

	first := startServer(t, env)
	id := write(t, first, api.SystemLogCreate{Message: "survives a restart"}, "").Id
	opts, err := os.ReadFile(filepath.Join(dataDir, "pgdata", "postmaster.opts"))
	if err != nil || !strings.Contains(string(opts), "fsync=on") || !strings.Contains(string(opts), "listen_addresses=") {
		t.Errorf("local PostgreSQL must be durable and socket-only; started with %q (%v)", opts, err)
	}
	if err := first.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pgdata", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("local PostgreSQL still running after serve returned (postmaster.pid: %v)", err)
	}

	second := startServer(t, env)
	got, err := second.Client.GetSystemLogWithResponse(ctx(t), id, &api.GetSystemLogParams{})
	if err != nil || got.JSON200 == nil || got.JSON200.Message != "survives a restart" {
		t.Fatalf("entry lost across a restart: %v %s", err, got.Body)
	}
	if strings.Contains(second.Output.String(), "initialising PostgreSQL cluster") {
		t.Error("the second start initialised a new cluster instead of reusing the data dir")
	}
}

// TestMissingBinariesIsOneClearError: without PostgreSQL binaries and
// without DATABASE_URL, serve says what to install or set.
func TestMissingBinariesIsOneClearError(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(ctx(t), []string{"serve", "--addr", "127.0.0.1:0"}, func(k string) string {
		return map[string]string{"PG_BINDIR": t.TempDir(), "VALHALLA_DATA_DIR": t.TempDir()}[k]
	}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("error %v, want one naming PostgreSQL and DATABASE_URL", err)
	}
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": pgtest.NewDatabase(t)}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	if err := run(ctx(t), []string{"migrate", "status"}, getenv, &out, &out); err != nil {
		t.Fatalf("status: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "pending") {
		t.Errorf("status before up does not show a pending migration:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx(t), []string{"migrate", "up"}, getenv, &out, &out); err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "applied 00001") || !strings.Contains(out.String(), "applied 00002") {
		t.Errorf("up output:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx(t), []string{"migrate", "up"}, getenv, &out, &out); err != nil || !strings.Contains(out.String(), "no pending migrations") {
		t.Errorf("second up: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx(t), []string{"migrate", "status"}, getenv, &out, &out); err != nil || !strings.Contains(out.String(), "applied") || strings.Contains(out.String(), "pending") {
		t.Errorf("status after up: %v\n%s", err, out.String())
	}
}

func TestVersionAndUsage(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(ctx(t), []string{"version"}, os.Getenv, &out, &out); err != nil || strings.TrimSpace(out.String()) != version {
		t.Errorf("version: %v %q", err, out.String())
	}
	out.Reset()
	if err := run(ctx(t), []string{"frobnicate"}, os.Getenv, &out, &out); err == nil || !strings.Contains(out.String(), "usage") {
		t.Errorf("unknown command: %v %q", err, out.String())
	}
	out.Reset()
	if err := run(ctx(t), []string{"serve", "--log-level", "loud", "--log-format", "yaml", "--shutdown-timeout", "soon"}, os.Getenv, &out, &out); err == nil ||
		!strings.Contains(err.Error(), "log level") || !strings.Contains(err.Error(), "log format") || !strings.Contains(err.Error(), "shutdown timeout") {
		t.Errorf("bad flags: %v", err)
	}
}
