package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/health"
	"github.com/valhalla-platform/valhalla/internal/httpapi"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/pgcluster"
)

// HTTP server limits: a client that trickles headers or bodies is cut off.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// serve runs the API until ctx is cancelled, then shuts down gracefully:
// readiness fails at once, in-flight requests finish (bounded by the
// shutdown timeout), then the pool and any local cluster close.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("serve", args, getenv, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", rest)
	}
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))

	pool, closeDB, err := openDatabase(ctx, cfg, getenv, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	applied, err := database.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	for _, m := range applied {
		logger.Info("migration applied", "version", m.Source.Version, "duration", m.Duration)
	}

	store := logstore.New(pool)
	checker := health.NewChecker(version, cfg.ReadyTimeout, logger, health.Check{Name: "database", Run: pool.Ping})
	handler, err := httpapi.NewServer(httpapi.Deps{
		Store:    store,
		Pool:     pool,
		Checker:  checker,
		Counters: &health.Counters{},
		Logger:   logger,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "version", version)

	select {
	case err := <-served:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "drain_timeout", cfg.ShutdownTimeout)
	checker.Drain()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("in-flight requests did not finish in time", "error", err)
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// openDatabase connects to cfg.DatabaseURL or, when it is empty, starts the
// durable local cluster under cfg.DataDir. The returned func closes the pool
// and then stops the local cluster.
func openDatabase(ctx context.Context, cfg config, getenv func(string) string, logger *slog.Logger) (*pgxpool.Pool, func(), error) {
	url := cfg.DatabaseURL
	var cluster *pgcluster.Cluster
	if url == "" {
		var err error
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{
			Dir:    cfg.DataDir,
			Fsync:  true,
			Logger: logger,
			Getenv: getenv,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("start local PostgreSQL (or set DATABASE_URL): %w", err)
		}
		url = cluster.ConnString("valhalla")
	}
	stopCluster := func() {
		if cluster == nil {
			return
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := cluster.Close(stopCtx); err != nil {
			logger.Error("stop local PostgreSQL", "error", err)
		}
	}
	pool, err := database.Open(ctx, url, cfg.DBWait, logger)
	if err != nil {
		stopCluster()
		return nil, nil, err
	}
	return pool, func() { pool.Close(); stopCluster() }, nil
}
