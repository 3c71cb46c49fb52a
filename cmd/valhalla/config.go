package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valhalla-platform/valhalla/internal/httpapi"
	"github.com/valhalla-platform/valhalla/internal/logging"
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
	// Limits bounds what one client can hold: a client that trickles its
	// headers or body is cut off.
	Limits limits
	// BootstrapToken becomes an all-scopes token named "bootstrap" when no
	// token exists yet. It comes from the environment only, never a flag,
	// so it does not show in process listings.
	BootstrapToken string
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
	API              httpapi.Limits
}

// parseConfig parses args for the command name, with defaults from getenv.
// extra, when given, declares the command's own flags.
func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer, extra ...func(*flag.FlagSet)) (config, []string, error) {
	cfg := config{BootstrapToken: getenv("VALHALLA_BOOTSTRAP_TOKEN")}
	fs := flag.NewFlagSet("valhalla "+name, flag.ContinueOnError)
	for _, declare := range extra {
		declare(fs)
	}
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", envOr(getenv, "VALHALLA_ADDR", "127.0.0.1:8080"),
		"address to listen on (VALHALLA_ADDR)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", getenv("VALHALLA_METRICS_ADDR"),
		"serve /metrics on this address instead of --addr, to keep it off the API port (VALHALLA_METRICS_ADDR)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", getenv("DATABASE_URL"),
		"PostgreSQL URL (DATABASE_URL); empty starts a local cluster under -data-dir")
	fs.StringVar(&cfg.DataDir, "data-dir", envOr(getenv, "VALHALLA_DATA_DIR", "./.valhalla"),
		"where the local PostgreSQL cluster lives when no database URL is given (VALHALLA_DATA_DIR)")
	level := fs.String("log-level", envOr(getenv, "VALHALLA_LOG_LEVEL", "info"),
		"log level: debug, info, warn or error (VALHALLA_LOG_LEVEL)")
	format := fs.String("log-format", envOr(getenv, "VALHALLA_LOG_FORMAT", "auto"),
		"log format: json, text, or auto for text on a terminal and JSON otherwise (VALHALLA_LOG_FORMAT)")
	shutdown := fs.String("shutdown-timeout", envOr(getenv, "VALHALLA_SHUTDOWN_TIMEOUT", "15s"),
		"how long in-flight requests may take to finish on shutdown (VALHALLA_SHUTDOWN_TIMEOUT)")
	drainDelay := fs.String("drain-delay", envOr(getenv, "VALHALLA_DRAIN_DELAY", "0s"),
		"on shutdown, how long to keep serving with readiness failing before new connections are refused, so load balancers stop sending traffic (VALHALLA_DRAIN_DELAY)")
	dbWait := fs.String("db-wait", envOr(getenv, "VALHALLA_DB_WAIT", "30s"),
		"how long to wait for the database at start (VALHALLA_DB_WAIT)")
	readyTimeout := fs.String("ready-timeout", envOr(getenv, "VALHALLA_READY_TIMEOUT", "1s"),
		"timeout of each readiness check (VALHALLA_READY_TIMEOUT)")
	readHeader := fs.String("read-header-timeout", envOr(getenv, "VALHALLA_READ_HEADER_TIMEOUT", "10s"),
		"how long a client may take to send the request headers (VALHALLA_READ_HEADER_TIMEOUT)")
	readTimeout := fs.String("read-timeout", envOr(getenv, "VALHALLA_READ_TIMEOUT", "60s"),
		"how long a client may take to send the whole request (VALHALLA_READ_TIMEOUT)")
	writeTimeout := fs.String("write-timeout", envOr(getenv, "VALHALLA_WRITE_TIMEOUT", "60s"),
		"how long serving one request may take, from the end of its headers (VALHALLA_WRITE_TIMEOUT)")
	idleTimeout := fs.String("idle-timeout", envOr(getenv, "VALHALLA_IDLE_TIMEOUT", "30s"),
		"how long an idle keep-alive connection stays open (VALHALLA_IDLE_TIMEOUT)")
	maxHeader := fs.String("max-header-bytes", envOr(getenv, "VALHALLA_MAX_HEADER_BYTES", "65536"),
		"largest request header block, in bytes (VALHALLA_MAX_HEADER_BYTES)")
	bodyBudget := fs.String("body-budget", envOr(getenv, "VALHALLA_BODY_BUDGET", strconv.Itoa(httpapi.DefaultBodyBudget)),
		"request body bytes all requests may hold at once; past it requests get a 503 with Retry-After (VALHALLA_BODY_BUDGET)")
	def := httpapi.DefaultLimits()
	ftoa := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	tokenRate := fs.String("token-rate", envOr(getenv, "VALHALLA_TOKEN_RATE", ftoa(def.Token.Requests)),
		"requests per second each token may make on this server, 0 for no limit; tokens create --rate overrides it per token (VALHALLA_TOKEN_RATE)")
	tokenEntryRate := fs.String("token-entry-rate", envOr(getenv, "VALHALLA_TOKEN_ENTRY_RATE", ftoa(def.Token.Entries)),
		"log entries per second each token may write on this server, 0 for no limit (VALHALLA_TOKEN_ENTRY_RATE)")
	tokenInFlight := fs.String("token-in-flight", envOr(getenv, "VALHALLA_TOKEN_IN_FLIGHT", strconv.Itoa(def.Token.InFlight)),
		"requests each token may have in flight on this server, 0 for no limit (VALHALLA_TOKEN_IN_FLIGHT)")
	addressRate := fs.String("address-rate", envOr(getenv, "VALHALLA_ADDRESS_RATE", ftoa(def.Address.Requests)),
		"requests per second each client address may make without a valid token, 0 for no limit (VALHALLA_ADDRESS_RATE)")
	addressInFlight := fs.String("address-in-flight", envOr(getenv, "VALHALLA_ADDRESS_IN_FLIGHT", strconv.Itoa(def.Address.InFlight)),
		"requests each client address may have in flight without a valid token, 0 for no limit (VALHALLA_ADDRESS_IN_FLIGHT)")
	stmtTimeout := fs.String("db-statement-timeout", envOr(getenv, "VALHALLA_DB_STATEMENT_TIMEOUT", "30s"),
		"PostgreSQL cancels any statement of the server's that runs longer, 0s for no limit (VALHALLA_DB_STATEMENT_TIMEOUT)")
	dbReadTimeout := fs.String("db-read-timeout", envOr(getenv, "VALHALLA_DB_READ_TIMEOUT", "2s"),
		"statement timeout of reads and counts; one that runs out is a 503 that says to narrow it (VALHALLA_DB_READ_TIMEOUT)")
	dbReadConns := fs.String("db-read-conns", envOr(getenv, "VALHALLA_DB_READ_CONNS", "8"),
		"connections reads and counts may use, apart from the pool writes and readiness use (VALHALLA_DB_READ_CONNS)")
	maxConns := fs.String("max-connections", envOr(getenv, "VALHALLA_MAX_CONNECTIONS", "1024"),
		"open connections the server accepts at once, 0 for no cap; past it new ones wait (VALHALLA_MAX_CONNECTIONS)")
	maxIdle := fs.String("max-idle-connections", envOr(getenv, "VALHALLA_MAX_IDLE_CONNECTIONS", "256"),
		"idle keep-alive connections kept open; one more going idle is closed (VALHALLA_MAX_IDLE_CONNECTIONS)")
	if err := fs.Parse(args); err != nil {
		return cfg, nil, err
	}
	var errs []error
	if err := cfg.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error", *level))
	}
	logFormat, err := logging.ParseFormat(*format)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.LogFormat = logFormat
	for _, d := range []struct {
		name  string
		value string
		into  *time.Duration
	}{
		{"shutdown timeout", *shutdown, &cfg.ShutdownTimeout},
		{"drain delay", *drainDelay, &cfg.DrainDelay},
		{"db wait", *dbWait, &cfg.DBWait},
		{"ready timeout", *readyTimeout, &cfg.ReadyTimeout},
		{"read header timeout", *readHeader, &cfg.Limits.ReadHeaderTimeout},
		{"read timeout", *readTimeout, &cfg.Limits.ReadTimeout},
		{"write timeout", *writeTimeout, &cfg.Limits.WriteTimeout},
		{"idle timeout", *idleTimeout, &cfg.Limits.IdleTimeout},
		{"db statement timeout", *stmtTimeout, &cfg.Limits.StatementTimeout},
		{"db read timeout", *dbReadTimeout, &cfg.Limits.DBReadTimeout},
	} {
		v, err := time.ParseDuration(strings.TrimSpace(d.value))
		if err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("%s %q: want a duration such as 15s", d.name, d.value))
			continue
		}
		*d.into = v
	}
	if n, err := strconv.Atoi(strings.TrimSpace(*maxHeader)); err != nil || n < 1024 {
		errs = append(errs, fmt.Errorf("max header bytes %q: want a number of bytes, at least 1024", *maxHeader))
	} else {
		cfg.Limits.MaxHeaderBytes = n
	}
	for _, n := range []struct {
		name  string
		value string
		least int64
		into  *int64
	}{
		{"body budget", *bodyBudget, httpapi.MaxBatchBodyBytes, &cfg.Limits.API.BodyBudget},
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
		{"token rate", *tokenRate, &cfg.Limits.API.Token.Requests},
		{"token entry rate", *tokenEntryRate, &cfg.Limits.API.Token.Entries},
		{"address rate", *addressRate, &cfg.Limits.API.Address.Requests},
	} {
		v, err := strconv.ParseFloat(strings.TrimSpace(f.value), 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			errs = append(errs, fmt.Errorf("%s %q: want a number of requests per second, 0 for no limit", f.name, f.value))
			continue
		}
		*f.into = v
	}
	for _, f := range []struct {
		name  string
		value string
		into  *int
	}{
		{"max connections", *maxConns, &cfg.Limits.MaxConnections},
		{"db read conns", *dbReadConns, &cfg.Limits.DBReadConns},
		{"max idle connections", *maxIdle, &cfg.Limits.MaxIdleConnections},
		{"token in flight", *tokenInFlight, &cfg.Limits.API.Token.InFlight},
		{"address in flight", *addressInFlight, &cfg.Limits.API.Address.InFlight},
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
	return cfg, fs.Args(), nil
}

func envOr(getenv func(string) string, key, fallback string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return fallback
}
