package pgcluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/internal/pgcluster"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// timeout bounds each cluster operation in these tests.
const timeout = 2 * time.Minute

func TestStartAcceptsConnections(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t)

	if !filepath.IsAbs(c.DataDir()) {
		t.Errorf("DataDir() = %q, want an absolute path", c.DataDir())
	}
	if _, err := os.Stat(filepath.Join(c.DataDir(), "PG_VERSION")); err != nil {
		t.Errorf("PG_VERSION: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(c.DataDir()), "postgres.log")); err != nil {
		t.Errorf("server log: %v", err)
	}
	if got := queryInt(t, c.ConnString("valhalla"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d", got)
	}
	if got := queryString(t, c.ConnString("valhalla"), "SHOW listen_addresses"); got != "" {
		t.Errorf("listen_addresses = %q, want empty (unix socket only)", got)
	}
	if got := queryString(t, c.ConnString("valhalla"), "SHOW fsync"); got != "off" {
		t.Errorf("fsync = %q, want off", got)
	}
}

func TestCreateDatabaseIsIdempotent(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t)
	ctx := testContext(t)

	for range 2 {
		if err := c.CreateDatabase(ctx, "Mixed Case-db"); err != nil {
			t.Fatalf("CreateDatabase: %v", err)
		}
	}
	if got := queryString(t, c.ConnString("Mixed Case-db"), "SELECT current_database()"); got != "Mixed Case-db" {
		t.Errorf("current_database() = %q", got)
	}
}

func TestDataSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := pgtest.TempDir(t)
	ctx := testContext(t)
	opts := pgcluster.Options{Dir: dir, Logger: testLogger(t)}

	c := start(t, opts)
	exec1(t, c.ConnString("valhalla"), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.StartServer(ctx); err == nil {
		t.Error("StartServer after Close: got nil error")
	}

	opts.Settings = []string{"max_connections=42"}
	c = start(t, opts)
	if got := queryString(t, c.ConnString("valhalla"), "SELECT v FROM kept"); got != "still here" {
		t.Errorf("row after restart = %q, want %q", got, "still here")
	}
	if got := queryString(t, c.ConnString("valhalla"), "SHOW max_connections"); got != "42" {
		t.Errorf("max_connections = %q, want the setting's 42", got)
	}
}

func TestStopServerAndStartServer(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t)
	ctx := testContext(t)
	conn := c.ConnString("valhalla")

	if err := c.StopServer(ctx); err != nil {
		t.Fatalf("StopServer: %v", err)
	}
	if err := c.StopServer(ctx); err != nil {
		t.Fatalf("second StopServer: %v", err)
	}
	if err := ping(ctx, conn); err == nil {
		t.Fatal("connecting to a stopped server: got nil error")
	}
	if err := c.StartServer(ctx); err != nil {
		t.Fatalf("StartServer: %v", err)
	}
	if err := c.StartServer(ctx); err != nil {
		t.Fatalf("second StartServer: %v", err)
	}
	if err := ping(ctx, conn); err != nil {
		t.Fatalf("connecting after StartServer: %v", err)
	}
}

func TestStartStopsServerLeftRunning(t *testing.T) {
	t.Parallel()
	dir := pgtest.TempDir(t)
	opts := pgcluster.Options{Dir: dir, Logger: testLogger(t)}

	// The first cluster is never closed before the second starts, as when
	// the process that started it was killed.
	old := start(t, opts)
	exec1(t, old.ConnString("valhalla"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")

	c := start(t, opts)
	if old.ConnString("valhalla") == c.ConnString("valhalla") {
		t.Fatal("second Start reused the socket dir")
	}
	if got := queryInt(t, c.ConnString("valhalla"), "SELECT v FROM kept"); got != 42 {
		t.Errorf("row = %d, want 42", got)
	}
	if err := ping(testContext(t), old.ConnString("valhalla")); err == nil {
		t.Error("old server still answers on its socket")
	}
	// Closing the stale handle must leave the new server running.
	if err := old.Close(testContext(t)); err != nil {
		t.Fatalf("Close old: %v", err)
	}
	if got := queryInt(t, c.ConnString("valhalla"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d after closing the old handle", got)
	}
}

func TestStartIgnoresStalePIDFile(t *testing.T) {
	t.Parallel()
	dir := pgtest.TempDir(t)
	ctx := testContext(t)
	opts := pgcluster.Options{Dir: dir, Logger: testLogger(t)}

	c := start(t, opts)
	pidPath := filepath.Join(c.DataDir(), "postmaster.pid")
	pidFile, err := os.ReadFile(pidPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Leave a postmaster.pid behind naming a process that no longer exists,
	// as after a crash or kill -9, owned by the server user.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(pidFile), "\n")
	stale := fmt.Sprintf("%d\n%s", dead.Process.Pid, rest)
	if err := os.WriteFile(pidPath, []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(c.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Chown(pidPath, int(st.Uid), int(st.Gid)); err != nil {
		t.Fatal(err)
	}

	c = start(t, opts)
	if got := queryInt(t, c.ConnString("valhalla"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d", got)
	}
}

func TestStartAfterServerCrash(t *testing.T) {
	t.Parallel()
	dir := pgtest.TempDir(t)
	opts := pgcluster.Options{Dir: dir, Logger: testLogger(t)}

	c := start(t, opts)
	exec1(t, c.ConnString("valhalla"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
	// synchronous_commit is off: flush the commit to WAL before the crash.
	exec1(t, c.ConnString("valhalla"), "CHECKPOINT")
	pidFile, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(pidFile), "\n")
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatal(err)
	}
	// Kill the postmaster and its children (they share its process group),
	// as the OOM killer might; postmaster.pid stays behind. Where PID 1 does
	// not reap orphans the postmaster lingers as a zombie.
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDead(t, pid)

	c = start(t, opts)
	if got := queryInt(t, c.ConnString("valhalla"), "SELECT v FROM kept"); got != 7 {
		t.Errorf("row after crash = %d, want 7", got)
	}
}

// waitDead waits until pid has exited (reaped or zombie).
func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil && strings.Contains(string(stat), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d still running", pid)
}

func TestStartRejectsUntraversableDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as another user")
	}
	locked := filepath.Join(pgtest.TempDir(t), "locked")
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := pgcluster.Start(testContext(t), pgcluster.Options{Dir: filepath.Join(locked, "valhalla")})
	if err == nil || !strings.Contains(err.Error(), locked+" ") {
		t.Fatalf("Start = %v, want an error naming %s", err, locked)
	}
}

func TestStartWithMissingBinaries(t *testing.T) {
	t.Parallel()
	_, err := pgcluster.Start(testContext(t), pgcluster.Options{Dir: pgtest.TempDir(t), BinDir: t.TempDir()})
	if !errors.Is(err, pgcluster.ErrBinariesNotFound) {
		t.Fatalf("Start = %v, want ErrBinariesNotFound", err)
	}
}

func TestFindBinDir(t *testing.T) {
	t.Parallel()
	fake := fakeBinDir(t)
	empty := t.TempDir()
	pgConfigDir := t.TempDir()
	script := "#!/bin/sh\necho " + fake + "\n"
	if err := os.WriteFile(filepath.Join(pgConfigDir, "pg_config"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		env        map[string]string
		candidates []string
		want       string
		wantErr    []string // substrings of the error
	}{
		{name: "PG_BINDIR", env: map[string]string{"PG_BINDIR": fake}, candidates: []string{empty}, want: fake},
		{
			name:       "PG_BINDIR without binaries",
			env:        map[string]string{"PG_BINDIR": empty},
			candidates: []string{fake},
			wantErr:    []string{"PG_BINDIR", empty, "DATABASE_URL"},
		},
		{name: "pg_config on PATH", env: map[string]string{"PATH": empty + ":" + pgConfigDir}, candidates: []string{empty}, want: fake},
		{name: "usual paths", env: map[string]string{"PATH": empty}, candidates: []string{empty, fake}, want: fake},
		{
			name:       "nothing",
			env:        map[string]string{},
			candidates: []string{empty, filepath.Join(empty, "missing")},
			wantErr:    []string{"apt-get install postgresql", "PG_BINDIR", "DATABASE_URL"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string { return tt.env[k] }
			got, err := pgcluster.FindBinDirIn(getenv, tt.candidates)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("FindBinDir = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, pgcluster.ErrBinariesNotFound) {
				t.Fatalf("FindBinDir = %q, %v; want ErrBinariesNotFound", got, err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestFindBinDirOnThisMachine(t *testing.T) {
	t.Parallel()
	dir, err := pgcluster.FindBinDir(nil)
	if err != nil {
		t.Fatalf("FindBinDir: %v", err)
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("FindBinDir = %q: %v", dir, err)
		}
	}
}

// fakeBinDir returns a directory holding executable initdb, pg_ctl and
// postgres files.
func fakeBinDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// start starts a cluster with opts and closes it at cleanup.
func start(t *testing.T, opts pgcluster.Options) *pgcluster.Cluster {
	t.Helper()
	c, err := pgcluster.Start(testContext(t), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// ping connects to connString and runs SELECT 1.
func ping(ctx context.Context, connString string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

func exec1(t *testing.T, connString, sql string) {
	t.Helper()
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryInt(t *testing.T, connString, sql string) int {
	t.Helper()
	var v int
	queryRow(t, connString, sql, &v)
	return v
}

func queryString(t *testing.T, connString, sql string) string {
	t.Helper()
	var v string
	queryRow(t, connString, sql, &v)
	return v
}

func queryRow(t *testing.T, connString, sql string, dest any) {
	t.Helper()
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql).Scan(dest); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestAttachLeavesTheServerRunning: with Attach, Start connects to the
// server another process runs on the data dir without restarting it, and
// Close leaves it running; without a running server it starts one.
func TestAttachLeavesTheServerRunning(t *testing.T) {
	t.Parallel()
	dir := pgtest.TempDir(t)
	owner := start(t, pgcluster.Options{Dir: dir, Logger: testLogger(t)})
	exec1(t, owner.ConnString("valhalla"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
	pidBefore, err := os.ReadFile(filepath.Join(owner.DataDir(), "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}

	attached := start(t, pgcluster.Options{Dir: dir, Logger: testLogger(t), Attach: true})
	if attached.ConnString("valhalla") != owner.ConnString("valhalla") {
		t.Errorf("attached on %q, want the running server's %q", attached.ConnString("valhalla"), owner.ConnString("valhalla"))
	}
	if got := queryInt(t, attached.ConnString("valhalla"), "SELECT v FROM kept"); got != 7 {
		t.Errorf("row = %d, want 7", got)
	}
	if err := attached.Close(testContext(t)); err != nil {
		t.Fatalf("Close attached: %v", err)
	}
	pidAfter, err := os.ReadFile(filepath.Join(owner.DataDir(), "postmaster.pid"))
	if err != nil || string(pidAfter) != string(pidBefore) {
		t.Errorf("the server was restarted or stopped by an attached cluster (%v)", err)
	}
	if err := ping(testContext(t), owner.ConnString("valhalla")); err != nil {
		t.Errorf("owner's server gone after the attached cluster closed: %v", err)
	}

	if err := owner.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	alone := start(t, pgcluster.Options{Dir: dir, Logger: testLogger(t), Attach: true})
	if got := queryInt(t, alone.ConnString("valhalla"), "SELECT v FROM kept"); got != 7 {
		t.Errorf("row = %d, want 7", got)
	}
	if err := alone.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(owner.DataDir(), "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("a cluster Attach started itself was left running (%v)", err)
	}
}

// TestServerKeepsNoSecrets: PostgreSQL's processes get none of the
// server's environment, pg_hba.conf allows the local socket only, and a
// failed statement leaves neither its text nor its values in the log.
func TestServerKeepsNoSecrets(t *testing.T) {
	t.Setenv("VALHALLA_BOOTSTRAP_TOKEN", "vhl_secretsecret_abcdefghijklmnopqrstuvwxyz")
	c := pgtest.StartCluster(t)
	pidFile, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _, _ := strings.Cut(string(pidFile), "\n")
	environ, err := os.ReadFile("/proc/" + pid + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(environ), "VALHALLA") || strings.Contains(string(environ), "vhl_") {
		t.Errorf("PostgreSQL's environment holds the server's: %q", environ)
	}
	hba, err := os.ReadFile(filepath.Join(c.DataDir(), "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(hba), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && f[0] != "local" {
			t.Errorf("pg_hba.conf allows more than the socket: %q", line)
		}
	}
	conn, err := pgx.Connect(t.Context(), c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), `SELECT $1::text::jsonb`, `{"card":"4111-1111-1111-1111","pw":"hunter2"`); err == nil {
		t.Fatal("malformed JSON was accepted")
	}
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(c.DataDir()), "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw)
	if !strings.Contains(log, "invalid input syntax for type json") {
		t.Errorf("the refusal was not logged at all:\n%s", log)
	}
	if strings.Contains(log, "hunter2") || strings.Contains(log, "4111") || strings.Contains(log, "SELECT") {
		t.Errorf("the server log holds the statement or its values:\n%s", log)
	}
}

// TestServerLogIsRotatedAndKeepsNoValues: a write PostgreSQL refuses
// (a unique violation, whose DETAIL line would quote the key) leaves its
// value out of the log, and a log past its size is rotated while the
// cluster runs, into one previous file.
func TestServerLogIsRotatedAndKeepsNoValues(t *testing.T) {
	t.Parallel()
	const maxLog = 8 << 10
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: pgtest.TempDir(t), MaxLogBytes: maxLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close cluster: %v", err)
		}
	})
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE cards (number text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	const secret = "4111-1111-1111-1111"
	if _, err := conn.Exec(ctx, `INSERT INTO cards VALUES ($1)`, secret); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(filepath.Dir(c.DataDir()), "postgres.log")
	readLogs := func() string {
		t.Helper()
		var all strings.Builder
		for _, p := range []string{logPath + ".1", logPath} {
			b, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all.Write(b)
		}
		return all.String()
	}
	// Refused writes until the log has been rotated (checked every few
	// seconds), bounded.
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := conn.Exec(ctx, `INSERT INTO cards VALUES ($1)`, secret); err == nil {
			t.Fatal("a duplicate key was accepted")
		}
		if _, err := os.Stat(logPath + ".1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log was not rotated within a minute; it holds %d bytes", fileSize(t, logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
	log := readLogs()
	if !strings.Contains(log, "duplicate key value violates unique constraint") {
		t.Errorf("the refusals were not logged at all:\n%.2000s", log)
	}
	if strings.Contains(log, secret) || strings.Contains(log, "INSERT") {
		t.Errorf("the server log holds the statement or its values:\n%.2000s", log)
	}
	// One previous file and the current one: at most about twice the
	// size, with what was written in one check interval on top.
	if size := fileSize(t, logPath+".1"); size <= maxLog || size > 8*maxLog {
		t.Errorf("the rotated log holds %d bytes, want about %d", size, maxLog)
	}
	if _, err := conn.Exec(ctx, `SELECT 1`); err != nil {
		t.Errorf("the server after its log was rotated: %v", err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
