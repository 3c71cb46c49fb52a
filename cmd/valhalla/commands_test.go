package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestHelpShowsEachCommandsOwnFlags: -h prints the command's flags on
// stdout and succeeds; only serve shows the serve flags.
func TestHelpShowsEachCommandsOwnFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args      []string
		shows     string
		serveOnly bool
	}{
		{[]string{"serve", "-h"}, "-drain-delay", true},
		{[]string{"serve", "--help"}, "-addr", true},
		{[]string{"migrate", "-h"}, "-database-url", false},
		{[]string{"migrate", "status", "-h"}, "-data-dir", false},
		{[]string{"tokens", "list", "-h"}, "-database-url", false},
		{[]string{"tokens", "create", "-h"}, "-scopes", false},
		{[]string{"tokens", "revoke", "-h"}, "-data-dir", false},
		{[]string{"logs", "list", "-h"}, "-trace-id", false},
		{[]string{"logs", "write", "-h"}, "-level", false},
		{[]string{"logs", "tail", "-h"}, "-after", false},
		{[]string{"logs", "export", "-h"}, "-from-seq", false},
		{[]string{"sinks", "-h"}, "sinks replay NAME --from-seq N", false},
		{[]string{"sinks", "create", "-h"}, "-format", false},
		{[]string{"sinks", "replay", "-h"}, "-from-seq", false},
		{[]string{"sinks", "list", "-h"}, "-database-url", false},
		{[]string{"serve", "-h"}, "-sink-probe-interval", true},
		{[]string{"ledger", "-h"}, "ledger key", false},
		{[]string{"ledger", "key", "-h"}, "-ledger-key-file", false},
		{[]string{"retention", "-h"}, "retention run", false},
		{[]string{"retention", "run", "-h"}, "-dry-run", false},
		{[]string{"retention", "run", "-h"}, "-partition-interval", false},
		{[]string{"holds", "-h"}, "holds release NAME", false},
		{[]string{"holds", "create", "-h"}, "-reason", false},
		{[]string{"-h"}, "usage", false},
	} {
		var out, errOut bytes.Buffer
		err := run(ctx(t), tc.args, func(string) string { return "" }, &out, &errOut)
		if err != nil || !strings.Contains(out.String(), tc.shows) || errOut.Len() != 0 {
			t.Errorf("%v: %v, stdout %q, stderr %q; want success with %s on stdout", tc.args, err, out.String(), errOut.String(), tc.shows)
		}
		for _, serveFlag := range []string{"-drain-delay", "-shutdown-timeout", "-max-header-bytes"} {
			if strings.Contains(out.String(), serveFlag) != tc.serveOnly {
				t.Errorf("%v: shows %s: %v, want %v", tc.args, serveFlag, !tc.serveOnly, tc.serveOnly)
			}
		}
	}
}

// TestLifecycleFlags: the retention and the partition interval take
// durations or days, "forever" keeps everything, and a bad value names
// its flag.
func TestLifecycleFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args      []string
		env       map[string]string
		retention time.Duration
		interval  time.Duration
		err       string
	}{
		{nil, nil, 0, 24 * time.Hour, ""},
		{[]string{"--retention", "90d"}, nil, 90 * 24 * time.Hour, 24 * time.Hour, ""},
		{[]string{"--retention", "forever", "--partition-interval", "6h"}, nil, 0, 6 * time.Hour, ""},
		{nil, map[string]string{"VALHALLA_RETENTION": "2160h", "VALHALLA_PARTITION_INTERVAL": "7d"}, 2160 * time.Hour, 7 * 24 * time.Hour, ""},
		{[]string{"--retention", "0"}, nil, 0, 24 * time.Hour, ""},
		{[]string{"--retention", "soon"}, nil, 0, 0, "retention"},
		{[]string{"--retention", "30m"}, nil, 0, 0, "retention"},
		{[]string{"--partition-interval", "10m"}, nil, 0, 0, "partition interval"},
		{[]string{"--partition-interval", "-1d"}, nil, 0, 0, "partition interval"},
	} {
		var out bytes.Buffer
		cfg, _, err := parseConfig("retention run", lifecycleFlags, tc.args, func(k string) string { return tc.env[k] }, &out, &out)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v %v: %v, want an error about %s", tc.args, tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || cfg.Retention != tc.retention || cfg.PartitionInterval != tc.interval {
			t.Errorf("%v %v: %v, retention %s, interval %s; want %s, %s", tc.args, tc.env, err, cfg.Retention, cfg.PartitionInterval, tc.retention, tc.interval)
		}
	}
}

// TestFlagsGoAnywhere: flags may follow the subcommand's arguments, for
// migrate as for tokens, and "--" ends them.
func TestFlagsGoAnywhere(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	none := func(string) string { return "" }
	var out bytes.Buffer
	if err := run(ctx(t), []string{"migrate", "up", "--database-url", url}, none, &out, &out); err != nil {
		t.Fatalf("migrate up --database-url: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx(t), []string{"migrate", "status", "--database-url", url}, none, &out, &out); err != nil || !strings.Contains(out.String(), "applied") {
		t.Errorf("migrate status --database-url: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx(t), []string{"tokens", "create", "--name", "ci", "--database-url", url, "--scopes", "logs:read"}, none, &out, &out); err != nil {
		t.Fatalf("tokens create: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx(t), []string{"tokens", "revoke", "ci", "--database-url", url}, none, &out, &out); err != nil || !strings.Contains(out.String(), `revoked token "ci"`) {
		t.Errorf("tokens revoke NAME --database-url: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx(t), []string{"tokens", "revoke", "--database-url", url, "--", "-ci"}, none, &out, &out); err == nil || !strings.Contains(err.Error(), "-ci") {
		t.Errorf(`tokens revoke -- -ci: %v, want "no active token" for the name -ci`, err)
	}
}
