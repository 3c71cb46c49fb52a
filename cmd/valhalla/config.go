package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/valhalla-platform/valhalla/internal/logging"
)

// config is everything serve and migrate read from flags and environment.
// A flag wins over its environment variable, which wins over the default.
type config struct {
	Addr            string
	DatabaseURL     string
	DataDir         string
	LogLevel        slog.Level
	LogFormat       logging.Format
	ShutdownTimeout time.Duration
	DBWait          time.Duration
	ReadyTimeout    time.Duration
}

// parseConfig parses args for the command name, with defaults from getenv.
func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (config, []string, error) {
	var cfg config
	fs := flag.NewFlagSet("valhalla "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", envOr(getenv, "VALHALLA_ADDR", "127.0.0.1:8080"),
		"address to listen on (VALHALLA_ADDR)")
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
	dbWait := fs.String("db-wait", envOr(getenv, "VALHALLA_DB_WAIT", "30s"),
		"how long to wait for the database at start (VALHALLA_DB_WAIT)")
	readyTimeout := fs.String("ready-timeout", envOr(getenv, "VALHALLA_READY_TIMEOUT", "1s"),
		"timeout of each readiness check (VALHALLA_READY_TIMEOUT)")
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
		{"db wait", *dbWait, &cfg.DBWait},
		{"ready timeout", *readyTimeout, &cfg.ReadyTimeout},
	} {
		v, err := time.ParseDuration(strings.TrimSpace(d.value))
		if err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("%s %q: want a duration such as 15s", d.name, d.value))
			continue
		}
		*d.into = v
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
