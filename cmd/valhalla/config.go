package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/valhalla-platform/valhalla/internal/delivery"
	"github.com/valhalla-platform/valhalla/internal/httpapi"
	"github.com/valhalla-platform/valhalla/internal/logging"
	"github.com/valhalla-platform/valhalla/internal/pages"
)

// config is everything serve and migrate read from flags and environment.
// A flag wins over its environment variable, which wins over the default.
type config struct {
	Addr string
	// MetricsAddr, when set, serves /metrics there instead of on Addr.
	MetricsAddr     string
	DatabaseURL     string
	DataDir         string
	LogLevel        slog.Level
	LogFormat       logging.Format
	ShutdownTimeout time.Duration
	DrainDelay      time.Duration
	DBWait          time.Duration
	ReadyTimeout    time.Duration
	// SealInterval is how often the sequencer seals; 0 means this server
	// never seals (another one on the database must).
	SealInterval time.Duration
	// LedgerKeyFile holds the ledger's signing key (default
	// <DataDir>/ledger.key).
	LedgerKeyFile string
	// Sinks configure the delivery of the trail to sinks (docs/delivery.md).
	Sinks sinkConfig
	// MaxStreams bounds the live tails (GET /system/logs/stream) one
	// server holds at once.
	MaxStreams int
	// Limits bounds what one client can hold: a client that trickles its
	// headers or body is cut off.
	Limits limits
	// BootstrapToken becomes an all-scopes token named "bootstrap" when no
	// token exists yet. It comes from the environment only, never a flag,
	// so it does not show in process listings.
	BootstrapToken string
	// FrameAncestors are the origins allowed to embed the pages (/ui/,
	// /docs/) in a frame; none when empty.
	FrameAncestors []string
	// PartitionInterval is the width of system_logs' partitions;
	// Retention drops the partitions older than it (0: keep forever);
	// MaintainInterval is how often a server tries to maintain them
	// (docs/lifecycle.md).
	PartitionInterval time.Duration
	Retention         time.Duration
	MaintainInterval  time.Duration
}

// sinkConfig is how this server delivers to sinks.
type sinkConfig struct {
	// BatchSize is the most entries one delivery carries; Linger how long
	// a batch that is not full waits for more; Timeout bounds a request;
	// ProbeInterval is how often an open circuit lets a probe through.
	BatchSize     int
	Linger        time.Duration
	Timeout       time.Duration
	ProbeInterval time.Duration
}

// limits are the http.Server timeouts and header size limit, and what
// the API lets clients hold (httpapi.Limits).
type limits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// MaxConnections caps the open connections (0: no cap);
	// MaxIdleConnections the idle keep-alive ones among them.
	MaxConnections     int
	MaxIdleConnections int
	// StatementTimeout bounds every statement; ReadTimeout, tighter, the
	// reads, which run on a pool of ReadConns connections of their own.
	StatementTimeout time.Duration
	DBReadTimeout    time.Duration
	DBReadConns      int
	// DBReadConnsPerToken is how many of them one token's reads may hold
	// at once (0: an eighth of them, at least one).
	DBReadConnsPerToken int
	// DBBatchConns is how many batch writes may be in PostgreSQL at once
	// (0: as many as the server has cores, at least 2).
	DBBatchConns int
	API          httpapi.Limits
}

// Which flags a command takes: every command that opens the database takes
// the database flags; serve and ledger take the ledger key file; only
// serve takes the rest.
const (
	databaseFlags  = iota
	ledgerFlags    // the database flags and the ledger's key file
	lifecycleFlags // the ledger flags, the partition interval and the retention
	serveFlags
)

// parseConfig parses args for the command name, with defaults from getenv:
// the database flags, the serve flags too when which is serveFlags, and
// the command's own that extra declares. It returns the positional
// arguments, or flag.ErrHelp after printing the help on stdout for -h.
func parseConfig(name string, which int, args []string, getenv func(string) string, stdout, stderr io.Writer, extra ...func(*flag.FlagSet)) (config, []string, error) {
	cfg := config{BootstrapToken: getenv("VALHALLA_BOOTSTRAP_TOKEN")}
	fs := flag.NewFlagSet("valhalla "+name, flag.ContinueOnError)
	for _, declare := range extra {
		declare(fs)
	}
	fs.StringVar(&cfg.DatabaseURL, "database-url", getenv("DATABASE_URL"),
		"PostgreSQL URL (DATABASE_URL); empty starts a local cluster under -data-dir")
	fs.StringVar(&cfg.DataDir, "data-dir", envOr(getenv, "VALHALLA_DATA_DIR", "./.valhalla"),
		"where the local PostgreSQL cluster lives when no database URL is given (VALHALLA_DATA_DIR)")
	level := fs.String("log-level", envOr(getenv, "VALHALLA_LOG_LEVEL", "info"),
		"log level: debug, info, warn or error (VALHALLA_LOG_LEVEL)")
	dbWait := fs.String("db-wait", envOr(getenv, "VALHALLA_DB_WAIT", "30s"),
		"how long to wait for the database at start (VALHALLA_DB_WAIT)")
	// The serve flags; a command that does not take them keeps the
	// environment's values or the defaults, which it does not use.
	cfg.Addr = envOr(getenv, "VALHALLA_ADDR", "127.0.0.1:8080")
	format := envOr(getenv, "VALHALLA_LOG_FORMAT", "auto")
	shutdown := envOr(getenv, "VALHALLA_SHUTDOWN_TIMEOUT", "15s")
	drainDelay := envOr(getenv, "VALHALLA_DRAIN_DELAY", "0s")
	readyTimeout := envOr(getenv, "VALHALLA_READY_TIMEOUT", "1s")
	readHeader := envOr(getenv, "VALHALLA_READ_HEADER_TIMEOUT", "10s")
	readTimeout := envOr(getenv, "VALHALLA_READ_TIMEOUT", "60s")
	writeTimeout := envOr(getenv, "VALHALLA_WRITE_TIMEOUT", "60s")
	idleTimeout := envOr(getenv, "VALHALLA_IDLE_TIMEOUT", "30s")
	maxHeader := envOr(getenv, "VALHALLA_MAX_HEADER_BYTES", "65536")
	sealInterval := envOr(getenv, "VALHALLA_SEAL_INTERVAL", "250ms")
	frameAncestors := getenv("VALHALLA_UI_FRAME_ANCESTORS")
	maxStreams := envOr(getenv, "VALHALLA_MAX_STREAMS", "256")
	sinkBatch := envOr(getenv, "VALHALLA_SINK_BATCH_SIZE", strconv.Itoa(delivery.DefaultBatchSize))
	sinkLinger := envOr(getenv, "VALHALLA_SINK_LINGER", delivery.DefaultLinger.String())
	sinkTimeout := envOr(getenv, "VALHALLA_SINK_TIMEOUT", delivery.DefaultTimeout.String())
	sinkProbe := envOr(getenv, "VALHALLA_SINK_PROBE_INTERVAL", delivery.DefaultProbeInterval.String())
	cfg.MetricsAddr = getenv("VALHALLA_METRICS_ADDR")
	bodyBudget := envOr(getenv, "VALHALLA_BODY_BUDGET", strconv.Itoa(httpapi.DefaultBodyBudget))
	def := httpapi.DefaultLimits()
	ftoa := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	tokenRate := envOr(getenv, "VALHALLA_TOKEN_RATE", ftoa(def.Token.Requests))
	tokenEntryRate := envOr(getenv, "VALHALLA_TOKEN_ENTRY_RATE", ftoa(def.Token.Entries))
	tokenInFlight := envOr(getenv, "VALHALLA_TOKEN_IN_FLIGHT", strconv.Itoa(def.Token.InFlight))
	tokenReadRate := envOr(getenv, "VALHALLA_TOKEN_READ_RATE", ftoa(def.Token.Read))
	addressRate := envOr(getenv, "VALHALLA_ADDRESS_RATE", ftoa(def.Address.Requests))
	addressInFlight := envOr(getenv, "VALHALLA_ADDRESS_IN_FLIGHT", strconv.Itoa(def.Address.InFlight))
	stmtTimeout := envOr(getenv, "VALHALLA_DB_STATEMENT_TIMEOUT", "30s")
	dbReadTimeout := envOr(getenv, "VALHALLA_DB_READ_TIMEOUT", "2s")
	dbReadConns := envOr(getenv, "VALHALLA_DB_READ_CONNS", "8")
	dbReadConnsPerToken := envOr(getenv, "VALHALLA_DB_READ_CONNS_PER_TOKEN", "0")
	dbBatchConns := envOr(getenv, "VALHALLA_DB_BATCH_CONNS", "0")
	maxConns := envOr(getenv, "VALHALLA_MAX_CONNECTIONS", "1024")
	maxIdle := envOr(getenv, "VALHALLA_MAX_IDLE_CONNECTIONS", "256")
	cfg.LedgerKeyFile = getenv("VALHALLA_LEDGER_KEY_FILE")
	if which >= ledgerFlags {
		fs.StringVar(&cfg.LedgerKeyFile, "ledger-key-file", cfg.LedgerKeyFile,
			"the ledger's signing key, generated on first start; servers on one database share it (VALHALLA_LEDGER_KEY_FILE, default <data-dir>/ledger.key)")
	}
	partitionInterval := envOr(getenv, "VALHALLA_PARTITION_INTERVAL", "1d")
	retention := envOr(getenv, "VALHALLA_RETENTION", "forever")
	maintainInterval := envOr(getenv, "VALHALLA_MAINTAIN_INTERVAL", "10m")
	if which >= lifecycleFlags {
		fs.StringVar(&partitionInterval, "partition-interval", partitionInterval,
			"width of each system_logs partition created from now on, e.g. 1d or 6h; at least 1h (VALHALLA_PARTITION_INTERVAL)")
		fs.StringVar(&retention, "retention", retention,
			"drop the partitions whose entries are all older than this, e.g. 90d or 2160h, keeping what legal holds match; forever keeps everything (VALHALLA_RETENTION)")
	}
	if which == serveFlags {
		fs.StringVar(&maintainInterval, "maintain-interval", maintainInterval,
			"how often one of the servers creates partitions ahead and applies the retention (VALHALLA_MAINTAIN_INTERVAL)")
		fs.StringVar(&sealInterval, "seal-interval", sealInterval,
			"how often the sequencer seals new entries into the ledger; 0 makes this server never seal (VALHALLA_SEAL_INTERVAL)")
		fs.StringVar(&frameAncestors, "ui-frame-ancestors", frameAncestors,
			"origins allowed to embed the log viewer and API reference in a frame, separated by commas, e.g. https://portal.example.com; none when empty (VALHALLA_UI_FRAME_ANCESTORS)")
		fs.StringVar(&maxStreams, "max-streams", maxStreams,
			"most live tails (GET /system/logs/stream) this server holds at once; one more gets a 503 (VALHALLA_MAX_STREAMS)")
		fs.StringVar(&sinkBatch, "sink-batch-size", sinkBatch,
			"most entries one delivery to a sink carries (VALHALLA_SINK_BATCH_SIZE)")
		fs.StringVar(&sinkLinger, "sink-linger", sinkLinger,
			"how long a delivery that is not full waits for more entries; 0s sends at once (VALHALLA_SINK_LINGER)")
		fs.StringVar(&sinkTimeout, "sink-timeout", sinkTimeout,
			"how long a sink's destination may take to answer a delivery before it is retried (VALHALLA_SINK_TIMEOUT)")
		fs.StringVar(&sinkProbe, "sink-probe-interval", sinkProbe,
			"how often a sink whose circuit opened after a run of failures is probed again, and the longest retry backoff (VALHALLA_SINK_PROBE_INTERVAL)")
		fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "address to listen on (VALHALLA_ADDR)")
		fs.StringVar(&format, "log-format", format,
			"log format: json, text, or auto for text on a terminal and JSON otherwise (VALHALLA_LOG_FORMAT)")
		fs.StringVar(&shutdown, "shutdown-timeout", shutdown,
			"how long in-flight requests may take to finish on shutdown (VALHALLA_SHUTDOWN_TIMEOUT)")
		fs.StringVar(&drainDelay, "drain-delay", drainDelay,
			"on shutdown, how long to keep serving with readiness failing before new connections are refused, so load balancers stop sending traffic (VALHALLA_DRAIN_DELAY)")
		fs.StringVar(&readyTimeout, "ready-timeout", readyTimeout,
			"timeout of each readiness check (VALHALLA_READY_TIMEOUT)")
		fs.StringVar(&readHeader, "read-header-timeout", readHeader,
			"how long a client may take to send the request headers (VALHALLA_READ_HEADER_TIMEOUT)")
		fs.StringVar(&readTimeout, "read-timeout", readTimeout,
			"how long a client may take to send the whole request (VALHALLA_READ_TIMEOUT)")
		fs.StringVar(&writeTimeout, "write-timeout", writeTimeout,
			"how long serving one request may take, from the end of its headers (VALHALLA_WRITE_TIMEOUT)")
		fs.StringVar(&idleTimeout, "idle-timeout", idleTimeout,
			"how long an idle keep-alive connection stays open (VALHALLA_IDLE_TIMEOUT)")
		fs.StringVar(&maxHeader, "max-header-bytes", maxHeader,
			"largest request header block, in bytes (VALHALLA_MAX_HEADER_BYTES)")
		fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr,
			"serve /metrics on this address instead of --addr, to keep it off the API port (VALHALLA_METRICS_ADDR)")
		fs.StringVar(&bodyBudget, "body-budget", bodyBudget,
			"request body bytes all requests may hold at once; past it requests get a 503 with Retry-After (VALHALLA_BODY_BUDGET)")
		fs.StringVar(&tokenRate, "token-rate", tokenRate,
			"requests per second each token may make on this server, 0 for no limit; tokens create --rate overrides it per token (VALHALLA_TOKEN_RATE)")
		fs.StringVar(&tokenEntryRate, "token-entry-rate", tokenEntryRate,
			"log entries per second each token may write on this server, 0 for no limit (VALHALLA_TOKEN_ENTRY_RATE)")
		fs.StringVar(&tokenInFlight, "token-in-flight", tokenInFlight,
			"requests each token may have in flight on this server, 0 for no limit (VALHALLA_TOKEN_IN_FLIGHT)")
		fs.StringVar(&tokenReadRate, "token-read-rate", tokenReadRate,
			"bytes of listing and feed pages each token may read per second on this server, 0 for no limit; tokens create --read-rate overrides it per token (VALHALLA_TOKEN_READ_RATE)")
		fs.StringVar(&addressRate, "address-rate", addressRate,
			"requests per second each client address may make without a valid token, 0 for no limit (VALHALLA_ADDRESS_RATE)")
		fs.StringVar(&addressInFlight, "address-in-flight", addressInFlight,
			"requests each client address may have in flight without a valid token, 0 for no limit (VALHALLA_ADDRESS_IN_FLIGHT)")
		fs.StringVar(&stmtTimeout, "db-statement-timeout", stmtTimeout,
			"PostgreSQL cancels any statement of the server's that runs longer, 0s for no limit (VALHALLA_DB_STATEMENT_TIMEOUT)")
		fs.StringVar(&dbReadTimeout, "db-read-timeout", dbReadTimeout,
			"statement timeout of reads and counts; one that runs out is a 503 that says to narrow it (VALHALLA_DB_READ_TIMEOUT)")
		fs.StringVar(&dbReadConns, "db-read-conns", dbReadConns,
			"connections reads and counts may use, apart from the pool writes and readiness use (VALHALLA_DB_READ_CONNS)")
		fs.StringVar(&dbReadConnsPerToken, "db-read-conns-per-token", dbReadConnsPerToken,
			"of those, how many one token's reads may hold at once, 0 for an eighth, at least one; the rest wait their turn (VALHALLA_DB_READ_CONNS_PER_TOKEN)")
		fs.StringVar(&dbBatchConns, "db-batch-conns", dbBatchConns,
			"batch writes in PostgreSQL at once, 0 for one per core (at least 2); the rest wait, so the sequencer keeps up (VALHALLA_DB_BATCH_CONNS)")
		fs.StringVar(&maxConns, "max-connections", maxConns,
			"open connections the server accepts at once, 0 for no cap; past it new ones wait (VALHALLA_MAX_CONNECTIONS)")
		fs.StringVar(&maxIdle, "max-idle-connections", maxIdle,
			"idle keep-alive connections kept open; one more going idle is closed (VALHALLA_MAX_IDLE_CONNECTIONS)")
	}
	rest, err := parseFlags(fs, args, stdout, stderr)
	if err != nil {
		return cfg, nil, err
	}
	var errs []error
	if err := cfg.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error", *level))
	}
	logFormat, err := logging.ParseFormat(format)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.LogFormat = logFormat
	for _, d := range []struct {
		name  string
		value string
		into  *time.Duration
	}{
		{"shutdown timeout", shutdown, &cfg.ShutdownTimeout},
		{"drain delay", drainDelay, &cfg.DrainDelay},
		{"db wait", *dbWait, &cfg.DBWait},
		{"ready timeout", readyTimeout, &cfg.ReadyTimeout},
		{"seal interval", sealInterval, &cfg.SealInterval},
		{"sink linger", sinkLinger, &cfg.Sinks.Linger},
		{"sink timeout", sinkTimeout, &cfg.Sinks.Timeout},
		{"sink probe interval", sinkProbe, &cfg.Sinks.ProbeInterval},
		{"read header timeout", readHeader, &cfg.Limits.ReadHeaderTimeout},
		{"read timeout", readTimeout, &cfg.Limits.ReadTimeout},
		{"write timeout", writeTimeout, &cfg.Limits.WriteTimeout},
		{"idle timeout", idleTimeout, &cfg.Limits.IdleTimeout},
		{"db statement timeout", stmtTimeout, &cfg.Limits.StatementTimeout},
		{"db read timeout", dbReadTimeout, &cfg.Limits.DBReadTimeout},
	} {
		v, err := time.ParseDuration(strings.TrimSpace(d.value))
		if err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("%s %q: want a duration such as 15s", d.name, d.value))
			continue
		}
		*d.into = v
	}
	for _, d := range []struct {
		name, value string
		least       time.Duration
		forever     bool // "forever" (or 0) is allowed and means 0
		into        *time.Duration
	}{
		{"partition interval", partitionInterval, time.Hour, false, &cfg.PartitionInterval},
		{"retention", retention, time.Hour, true, &cfg.Retention},
		{"maintain interval", maintainInterval, time.Second, false, &cfg.MaintainInterval},
	} {
		v, err := parseDays(d.value)
		switch {
		case d.forever && (strings.TrimSpace(d.value) == "forever" || (err == nil && v == 0)):
			*d.into = 0
		case err != nil || v < d.least:
			errs = append(errs, fmt.Errorf("%s %q: want a duration of at least %s, such as 30d or 12h", d.name, d.value, d.least))
		default:
			*d.into = v
		}
	}
	if n, err := strconv.Atoi(strings.TrimSpace(maxHeader)); err != nil || n < 1024 {
		errs = append(errs, fmt.Errorf("max header bytes %q: want a number of bytes, at least 1024", maxHeader))
	} else {
		cfg.Limits.MaxHeaderBytes = n
	}
	if cfg.FrameAncestors, err = pages.ParseFrameAncestors(frameAncestors); err != nil {
		errs = append(errs, err)
	}
	if n, err := strconv.Atoi(strings.TrimSpace(maxStreams)); err != nil || n < 1 {
		errs = append(errs, fmt.Errorf("max streams %q: want a number, at least 1", maxStreams))
	} else {
		cfg.MaxStreams = n
	}
	if n, err := strconv.Atoi(strings.TrimSpace(sinkBatch)); err != nil || n < 1 || n > 10_000 {
		errs = append(errs, fmt.Errorf("sink batch size %q: want a number from 1 to 10000", sinkBatch))
	} else {
		cfg.Sinks.BatchSize = n
	}
	for _, d := range []struct {
		name  string
		value string
	}{{"sink timeout", sinkTimeout}, {"sink probe interval", sinkProbe}} {
		if v, err := time.ParseDuration(strings.TrimSpace(d.value)); err == nil && v == 0 {
			errs = append(errs, fmt.Errorf("%s: want more than 0s", d.name))
		}
	}
	for _, n := range []struct {
		name  string
		value string
		least int64
		into  *int64
	}{
		{"body budget", bodyBudget, httpapi.MaxBatchBodyBytes, &cfg.Limits.API.BodyBudget},
	} {
		v, err := strconv.ParseInt(strings.TrimSpace(n.value), 10, 64)
		if err != nil || v < n.least {
			errs = append(errs, fmt.Errorf("%s %q: want a number, at least %d", n.name, n.value, n.least))
			continue
		}
		*n.into = v
	}
	for _, f := range []struct {
		name  string
		value string
		into  *float64
	}{
		{"token rate", tokenRate, &cfg.Limits.API.Token.Requests},
		{"token entry rate", tokenEntryRate, &cfg.Limits.API.Token.Entries},
		{"address rate", addressRate, &cfg.Limits.API.Address.Requests},
		{"token read rate", tokenReadRate, &cfg.Limits.API.Token.Read},
	} {
		v, err := strconv.ParseFloat(strings.TrimSpace(f.value), 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			errs = append(errs, fmt.Errorf("%s %q: want a number per second, 0 for no limit", f.name, f.value))
			continue
		}
		*f.into = v
	}
	for _, f := range []struct {
		name  string
		value string
		into  *int
	}{
		{"max connections", maxConns, &cfg.Limits.MaxConnections},
		{"db read conns", dbReadConns, &cfg.Limits.DBReadConns},
		{"db read conns per token", dbReadConnsPerToken, &cfg.Limits.DBReadConnsPerToken},
		{"db batch conns", dbBatchConns, &cfg.Limits.DBBatchConns},
		{"max idle connections", maxIdle, &cfg.Limits.MaxIdleConnections},
		{"token in flight", tokenInFlight, &cfg.Limits.API.Token.InFlight},
		{"address in flight", addressInFlight, &cfg.Limits.API.Address.InFlight},
	} {
		v, err := strconv.Atoi(strings.TrimSpace(f.value))
		if err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("%s %q: want a number, 0 for no limit", f.name, f.value))
			continue
		}
		*f.into = v
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, nil, err
	}
	if cfg.LedgerKeyFile == "" {
		cfg.LedgerKeyFile = filepath.Join(cfg.DataDir, "ledger.key")
	}
	return cfg, rest, nil
}

// parseFlags parses args with fs, its flags before, between or after the
// positional arguments, which it returns (every argument after "--" is
// one). With -h or --help it prints the usage on stdout and returns
// flag.ErrHelp, which run turns into success; other mistakes print the
// error and usage on stderr.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(stdout)
			break
		}
	}
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if consumed := len(args) - len(left); consumed > 0 && args[consumed-1] == "--" {
			return append(rest, left...), nil
		}
		if len(left) == 0 {
			return rest, nil
		}
		rest, args = append(rest, left[0]), left[1:]
	}
}

// parseDays parses a duration as time.ParseDuration does, and also a
// whole number of days, such as 30d.
func parseDays(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("days %q: want a whole number", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func envOr(getenv func(string) string, key, fallback string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return fallback
}
