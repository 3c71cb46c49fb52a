// Package pgcluster runs a local PostgreSQL cluster from the server binaries
// installed on the machine (initdb, pg_ctl, postgres). The server listens on a
// unix socket in a short private temp dir only, never on TCP.
package pgcluster

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// port names the socket file (.s.PGSQL.5432); nothing listens on TCP.
	port = 5432
	// pgCtlTimeout is the -t seconds pg_ctl waits for start and stop.
	pgCtlTimeout = "60"
	// defaultDatabase is the database Start makes sure exists.
	defaultDatabase = "valhalla"
	// logTailBytes is how much of the server log errors quote.
	logTailBytes = 2000
)

var errClosed = errors.New("cluster is closed")

// Options configures a local cluster.
type Options struct {
	// Dir is the Valhalla data dir, e.g. "./.valhalla"; it is made absolute
	// and created if missing. PGDATA is Dir/pgdata and the server log is
	// Dir/postgres.log.
	Dir string
	// BinDir holds the PostgreSQL server binaries; empty means
	// FindBinDir(Getenv).
	BinDir string
	// Fsync is true for durable serving; tests pass false, which also turns
	// off synchronous_commit and full_page_writes.
	Fsync bool
	// Logger receives Info records when the cluster is initialised, started
	// and stopped; nil discards them.
	Logger *slog.Logger
	// Getenv is used only by FindBinDir; nil means os.Getenv.
	Getenv func(string) string
	// Attach makes Start connect to a server already running on the data
	// dir (say, one that `valhalla serve` started) as it is, instead of
	// restarting it, and makes Close leave that server running. Without a
	// running server Start starts one as usual.
	Attach bool
	// Settings are extra server settings, each "name=value", passed to
	// the server at every start (e.g. "max_connections=200").
	Settings []string
	// MaxLogBytes is the size past which the server log is rotated, at
	// start and while the Cluster is open; 0 means 10 MiB.
	MaxLogBytes int64
}

// Cluster is a running (or stopped) local PostgreSQL cluster started by Start.
// Its methods are safe for concurrent use.
type Cluster struct {
	dir       string
	dataDir   string
	logPath   string
	socketDir string
	binDir    string
	fsync     bool
	settings  []string
	logger    *slog.Logger
	owner     owner
	attach    bool
	// attached is true when Start found a server running and attached to
	// it; Close then leaves it running.
	attached bool

	mu     sync.Mutex
	closed bool
	// maxLog is Options.MaxLogBytes or its default; stopRotating ends
	// the goroutine that rotates the log, and rotated is closed when it
	// has.
	maxLog       int64
	stopRotating chan struct{}
	rotated      chan struct{}
}

// Start initialises the cluster in opts.Dir if Dir/pgdata has no PG_VERSION
// yet (initdb -U postgres --auth=trust -E UTF8 --locale=C), starts it on a
// fresh private unix socket dir and returns once it accepts connections and a
// database named "valhalla" exists. A server still running on the same data
// dir from a previous, killed process is stopped and started again; a stale
// postmaster.pid is left to pg_ctl, which ignores it.
//
// Start returns an error wrapping ErrBinariesNotFound when the server binaries
// are missing. Running as root it runs PostgreSQL as the "postgres" OS user and
// returns an error when that user does not exist or cannot traverse Dir or one
// of its parents. Errors from initdb and pg_ctl quote their output and the tail
// of the server log.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := newCluster(opts)
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	if err := c.start(ctx); err != nil {
		if c.socketDir != "" && !c.attached {
			_ = os.RemoveAll(c.socketDir)
		}
		return nil, fmt.Errorf("start cluster in %s: %w", c.dir, err)
	}
	go c.rotateLogs()
	return c, nil
}

// newCluster resolves opts into a Cluster without touching the server.
func newCluster(opts Options) (*Cluster, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		return nil, errors.New("options: Dir is empty")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir: %w", err)
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(opts.Getenv); err != nil {
			return nil, err
		}
	} else if !hasServerBinaries(binDir) {
		return nil, fmt.Errorf("%w in BinDir %q: point it at the bin directory of a PostgreSQL server install", ErrBinariesNotFound, binDir)
	}
	own, err := serverOwner()
	if err != nil {
		return nil, err
	}
	// Check the part of dir that exists before creating the rest.
	existing := dir
	for _, err := os.Stat(existing); errors.Is(err, os.ErrNotExist) && filepath.Dir(existing) != existing; _, err = os.Stat(existing) {
		existing = filepath.Dir(existing)
	}
	if err := own.checkTraversable(existing, dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := own.checkTraversable(dir, dir); err != nil {
		return nil, err
	}
	return &Cluster{
		dir:      dir,
		dataDir:  filepath.Join(dir, "pgdata"),
		logPath:  filepath.Join(dir, "postgres.log"),
		binDir:   binDir,
		fsync:    opts.Fsync,
		settings: opts.Settings,
		logger:   logger,
		owner:    own,
		attach:   opts.Attach,
		maxLog:   cmp.Or(opts.MaxLogBytes, maxLogBytes),

		stopRotating: make(chan struct{}),
		rotated:      make(chan struct{}),
	}, nil
}

// start initialises the cluster if needed, stops a leftover server, starts
// the server and creates the default database.
func (c *Cluster) start(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("check data dir: %w", err)
	}
	if err := c.localOnly(); err != nil {
		return err
	}
	if err := c.prepareLogFile(); err != nil {
		return err
	}
	if err := c.removeZombieLockFile(); err != nil {
		return err
	}
	running, err := c.running(ctx)
	if err != nil {
		return err
	}
	if running && c.attach {
		sock, err := c.runningSocketDir()
		if err != nil {
			return err
		}
		c.logger.Info("attaching to the running PostgreSQL", "data_dir", c.dataDir, "socket_dir", sock)
		c.socketDir, c.attached = sock, true
		return c.CreateDatabase(ctx, defaultDatabase)
	}
	if running {
		c.logger.Info("stopping PostgreSQL left running by a previous process", "data_dir", c.dataDir)
		if err := c.pgCtlStop(ctx); err != nil {
			return err
		}
	}
	sock, err := os.MkdirTemp(shortTempDir(), "vhl-")
	if err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	c.socketDir = sock
	if err := c.owner.chown(sock); err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	if err := os.Chmod(sock, 0o700); err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	if err := c.owner.checkTraversable(sock, sock); err != nil {
		return err
	}
	if err := c.pgCtlStart(ctx); err != nil {
		return err
	}
	if err := c.CreateDatabase(ctx, defaultDatabase); err != nil {
		return err
	}
	return nil
}

// initdb creates a new cluster in c.dataDir.
func (c *Cluster) initdb(ctx context.Context) error {
	c.logger.Info("initialising PostgreSQL cluster", "data_dir", c.dataDir)
	if err := os.Mkdir(c.dataDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("initdb: create data dir: %w", err)
	}
	if err := c.owner.chown(c.dataDir); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	args := []string{"-D", c.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"}
	if !c.fsync {
		args = append(args, "--no-sync")
	}
	if out, err := c.run(ctx, "initdb", args...); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, tail(out, logTailBytes))
	}
	return nil
}

// hbaLocalOnly is the whole pg_hba.conf: connections over the unix socket
// only, whose directory only the server owner (and root) can enter.
const hbaLocalOnly = "# Written by valhalla: the unix socket only, never TCP.\nlocal all all trust\n"

// localOnly writes pg_hba.conf so that only the local socket is allowed,
// whatever listen_addresses says.
func (c *Cluster) localOnly() error {
	path := filepath.Join(c.dataDir, "pg_hba.conf")
	if err := os.WriteFile(path, []byte(hbaLocalOnly), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	if err := c.owner.chown(path); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}

// maxLogBytes is the default size past which the server log is rotated:
// it becomes postgres.log.1, replacing the one before, so the log takes
// at most about twice this.
const maxLogBytes = 10 << 20

// logCheckInterval is how often an open Cluster checks the log's size.
var logCheckInterval = 5 * time.Second

// prepareLogFile rotates the server log when it has grown past c.maxLog,
// then creates it so the server user can append to it.
func (c *Cluster) prepareLogFile() error {
	if fileSize(c.logPath) > c.maxLog {
		if err := os.Rename(c.logPath, c.logPath+".1"); err != nil {
			return fmt.Errorf("rotate server log: %w", err)
		}
	}
	f, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	if err := c.owner.chown(c.logPath); err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	return nil
}

// rotateLogs rotates the server log whenever it has grown past c.maxLog,
// checking every logCheckInterval until Close.
func (c *Cluster) rotateLogs() {
	defer close(c.rotated)
	tick := time.NewTicker(logCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stopRotating:
			return
		case <-tick.C:
		}
		if err := c.rotateLog(); err != nil {
			c.logger.Warn("cannot rotate the PostgreSQL log", "error", err)
		}
	}
}

// rotateLog copies the server log to postgres.log.1, replacing the one
// before, and truncates it, when it is past c.maxLog. The server holds
// the log open for appending (pg_ctl -l), so it cannot be renamed under
// it; after the truncation its next line starts the file again. Lines
// written between the copy and the truncation are lost.
func (c *Cluster) rotateLog() error {
	if fileSize(c.logPath) <= c.maxLog {
		return nil
	}
	src, err := os.Open(c.logPath)
	if err != nil {
		return fmt.Errorf("rotate server log: %w", err)
	}
	defer src.Close()
	old := c.logPath + ".1"
	dst, err := os.OpenFile(old+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("rotate server log: %w", err)
	}
	_, err = io.Copy(dst, src)
	err = errors.Join(err, dst.Close())
	if err == nil {
		err = os.Rename(old+".tmp", old)
	}
	if err == nil {
		err = os.Truncate(c.logPath, 0)
	}
	if err != nil {
		_ = os.Remove(old + ".tmp")
		return fmt.Errorf("rotate server log: %w", err)
	}
	return nil
}

// ConnString returns a libpq keyword/value connection string for database on
// the cluster's unix socket as user postgres, usable by pgx.Connect and
// pgxpool.ParseConfig.
func (c *Cluster) ConnString(database string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable",
		quoteConnValue(c.socketDir), port, quoteConnValue(database))
}

// DataDir returns the absolute PGDATA path.
func (c *Cluster) DataDir() string {
	return c.dataDir
}

// CreateDatabase creates the database name; it is no error if it exists. It
// returns an error when the server cannot be reached or refuses.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// StopServer stops the server (fast shutdown, waiting for it to exit) but
// keeps the data and the socket dir, so StartServer brings it back on the same
// ConnString. Stopping a stopped server is no error. It returns an error if
// the cluster is closed or pg_ctl fails.
func (c *Cluster) StopServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("stop server: %w", errClosed)
	}
	if err := c.stop(ctx); err != nil {
		return fmt.Errorf("stop server: %w", err)
	}
	return nil
}

// StartServer starts a server stopped by StopServer again on the same socket
// dir; starting a running server is no error. It returns an error if the
// cluster is closed or pg_ctl fails, quoting the tail of the server log.
func (c *Cluster) StartServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("start server: %w", errClosed)
	}
	if ours, err := c.ownsRunningServer(ctx); err != nil {
		return fmt.Errorf("start server: %w", err)
	} else if ours {
		return nil
	}
	if err := c.prepareLogFile(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	if err := c.pgCtlStart(ctx); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	return nil
}

// Close stops the server (fast shutdown, waiting for it to exit) and removes
// the socket dir; the data stays in DataDir. A server that another Cluster
// has started on the same data dir since is left running. Close is safe to
// call twice; it returns an error if pg_ctl fails or the socket dir cannot be
// removed.
func (c *Cluster) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	close(c.stopRotating)
	<-c.rotated
	if c.attached {
		return nil
	}
	err := c.stop(ctx)
	if rmErr := os.RemoveAll(c.socketDir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("remove socket dir: %w", rmErr))
	}
	if err != nil {
		return fmt.Errorf("close cluster: %w", err)
	}
	return nil
}

// stop stops the server if it is running and was started by c.
func (c *Cluster) stop(ctx context.Context) error {
	if c.attached {
		return nil
	}
	ours, err := c.ownsRunningServer(ctx)
	if err != nil || !ours {
		return err
	}
	return c.pgCtlStop(ctx)
}

// ownsRunningServer reports whether a server is running on c.dataDir with
// c's socket dir, that is, one this Cluster started.
func (c *Cluster) ownsRunningServer(ctx context.Context) (bool, error) {
	pid, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read postmaster.pid: %w", err)
	}
	// Line 5 of postmaster.pid is the first unix socket directory.
	lines := strings.Split(string(pid), "\n")
	if len(lines) < 5 || lines[4] != c.socketDir {
		if len(lines) >= 5 {
			c.logger.Info("leaving PostgreSQL started by another process running", "data_dir", c.dataDir, "socket_dir", lines[4])
		}
		return false, nil
	}
	return c.running(ctx)
}

// runningSocketDir returns the unix socket dir of the server running on
// c.dataDir, from line 5 of its postmaster.pid.
func (c *Cluster) runningSocketDir() (string, error) {
	pid, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return "", fmt.Errorf("attach: read postmaster.pid: %w", err)
	}
	lines := strings.Split(string(pid), "\n")
	if len(lines) < 5 || lines[4] == "" {
		return "", errors.New("attach: postmaster.pid names no socket dir")
	}
	return lines[4], nil
}

// running reports whether pg_ctl status finds a live server on c.dataDir.
func (c *Cluster) running(ctx context.Context) (bool, error) {
	out, err := c.run(ctx, "pg_ctl", "status", "-D", c.dataDir)
	if err == nil {
		return true, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == 3 { // no server running
		return false, nil
	}
	return false, fmt.Errorf("pg_ctl status: %w\n%s", err, tail(out, logTailBytes))
}

// pgCtlStart starts the server on c.socketDir and waits until it accepts
// connections.
func (c *Cluster) pgCtlStart(ctx context.Context) error {
	c.logger.Info("starting PostgreSQL", "data_dir", c.dataDir, "socket_dir", c.socketDir)
	settings := []string{
		"listen_addresses=",
		fmt.Sprintf("port=%d", port),
		"unix_socket_directories=" + c.socketDir,
		// The data is on local storage, mostly in the page cache: a random
		// read costs about what a sequential one does. With the default of 4
		// the planner read a deep list page from the timestamp index,
		// filtering 1,800 rows, rather than the category index it uses for
		// the first page, and the deep page took twice as long.
		"random_page_cost=1.1",
		// The ledger's sequencer orders the entries of one seal pass by
		// their transactions' commit timestamps (docs/ledger.md).
		"track_commit_timestamp=on",
		// The log never holds a statement or the values in it: no
		// statement logging, no STATEMENT line after an error, and terse
		// errors (no DETAIL or CONTEXT, which quote the data).
		"log_statement=none",
		"log_min_error_statement=panic",
		"log_error_verbosity=terse",
		"log_parameter_max_length=0",
		"log_parameter_max_length_on_error=0",
	}
	if c.fsync {
		settings = append(settings, "fsync=on")
	} else {
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	settings = append(settings, c.settings...)
	var opts []string
	for _, s := range settings {
		opts = append(opts, "-c", shellQuote(s)) // pg_ctl hands -o to /bin/sh
	}
	logStart := fileSize(c.logPath)
	out, err := c.run(ctx, "pg_ctl", "start", "-D", c.dataDir, "-w", "-t", pgCtlTimeout,
		"-l", c.logPath, "-o", strings.Join(opts, " "))
	if err != nil {
		err = fmt.Errorf("pg_ctl start: %w\n%s\nserver log %s:\n%s", err, strings.TrimSpace(out), c.logPath, c.logSince(logStart))
		// pg_ctl may give up waiting on a server that then comes up.
		if running, _ := c.running(context.WithoutCancel(ctx)); running {
			_ = c.pgCtlStop(context.WithoutCancel(ctx))
		}
		return err
	}
	return nil
}

// pgCtlStop stops the server on c.dataDir with a fast shutdown and waits for
// it to exit.
func (c *Cluster) pgCtlStop(ctx context.Context) error {
	c.logger.Info("stopping PostgreSQL", "data_dir", c.dataDir)
	logStart := fileSize(c.logPath)
	out, err := c.run(ctx, "pg_ctl", "stop", "-D", c.dataDir, "-m", "fast", "-w", "-t", pgCtlTimeout)
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s\nserver log %s:\n%s", err, strings.TrimSpace(out), c.logPath, c.logSince(logStart))
	}
	return nil
}

// run runs a server binary as the server owner in its own process group, so
// a terminal's Ctrl-C does not reach PostgreSQL, and returns its output.
func (c *Cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.owner.credential()}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.String(), err
}

// logSince returns the server log written after offset, at most logTailBytes
// of its end.
func (c *Cluster) logSince(offset int64) string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	return tail(string(b), logTailBytes)
}

// serverEnv is the whole environment of PostgreSQL's processes: a fixed
// PATH and the C locale. Nothing of the server's own environment (which
// holds VALHALLA_BOOTSTRAP_TOKEN, OTLP headers, PG* variables that would
// override our settings) reaches them.
func serverEnv() []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "LANG=C"}
}

// shortTempDir returns a parent for the socket dir that keeps socket paths
// well under the ~107 byte limit.
func shortTempDir() string {
	if dir := os.TempDir(); len(dir) <= 60 {
		return dir
	}
	return "/tmp"
}

// fileSize returns the size of path, or 0 if it cannot be read.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// tail returns the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// quoteConnValue quotes v for a libpq keyword/value connection string.
func quoteConnValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}
