// Package database opens Valhalla's PostgreSQL pool (traced with
// OpenTelemetry when asked), applies the embedded goose migrations, and
// tells a database outage apart from other errors.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/valhalla-platform/valhalla/migrations"
)

// Option configures the pool Open creates.
type Option func(*options)

type options struct {
	tracerProvider   trace.TracerProvider
	acquireTracers   []pgxpool.AcquireTracer
	statementTimeout time.Duration
}

// WithStatementTimeout has PostgreSQL cancel any statement of the pool's
// that runs longer than d (statement_timeout; SQLSTATE 57014).
func WithStatementTimeout(d time.Duration) Option {
	return func(o *options) { o.statementTimeout = d }
}

// WithTracerProvider makes each query, batch, COPY, prepare, connect and
// pool acquire a span of tp, child of the caller's span. Spans are only
// started under a recording span, so an untraced (or unsampled) caller
// costs next to nothing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithAcquireTracer reports each connection acquire from the pool to t.
func WithAcquireTracer(t pgxpool.AcquireTracer) Option {
	return func(o *options) { o.acquireTracers = append(o.acquireTracers, t) }
}

// DefaultMaxConns is the pool size when the URL does not set
// pool_max_conns. pgx's own default (4 on a small machine) starves
// concurrent writes: each commit waits for its WAL flush, and more
// connections let PostgreSQL flush many commits at once. The size was
// chosen with make bench; the measurements are in docs/performance.md.
const DefaultMaxConns = 16

// Open connects a pool to the database at url, configured by Config with
// opts, and waits up to wait for it to answer a ping. It returns an error
// when url does not parse or the database never answers. A nil logger
// discards the retry messages.
func Open(ctx context.Context, url string, wait time.Duration, logger *slog.Logger, opts ...Option) (*pgxpool.Pool, error) {
	cfg, err := Config(url, opts...)
	if err != nil {
		return nil, err
	}
	return OpenConfig(ctx, cfg, wait, logger)
}

// Config returns the pool configuration for url. The pool holds up to
// DefaultMaxConns connections unless url sets pool_max_conns. Every
// connection plans each query for its actual parameters
// (plan_cache_mode=force_custom_plan), so the optional filters of the list
// query always get a plan that uses the matching index, and moves uuid.UUID
// values as 16 binary bytes rather than text; opts add tracers. It returns
// an error when url does not parse.
func Config(url string, opts ...Option) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if !setsMaxConns(url) {
		cfg.MaxConns = DefaultMaxConns
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.tracerProvider != nil || len(o.acquireTracers) > 0 {
		tracer := &multitracer.Tracer{}
		if o.tracerProvider != nil {
			tracer = multitracer.New(otelpgx.NewTracer(
				otelpgx.WithTracerProvider(o.tracerProvider),
				otelpgx.WithMeterProvider(noop.NewMeterProvider()),
			))
		}
		tracer.PoolAcquireTracers = append(tracer.PoolAcquireTracers, o.acquireTracers...)
		cfg.ConnConfig.Tracer = tracer
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "valhalla"
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	if o.statementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(o.statementTimeout.Milliseconds(), 10)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		RegisterTypes(conn.TypeMap())
		return nil
	}
	return cfg, nil
}

// RegisterTypes teaches m the codecs every connection of the server uses
// (uuid and uuid[] in binary, jsonb as its text): pool connections get
// them on connect; a connection opened on its own (pgx.ConnectConfig) must
// be given them.
func RegisterTypes(m *pgtype.Map) {
	registerUUID(m)
	registerJSONB(m)
}

// OpenConfig is Open for a configuration from Config that the caller has
// adjusted (a query tracer, say).
func OpenConfig(ctx context.Context, cfg *pgxpool.Config, wait time.Duration, logger *slog.Logger) (*pgxpool.Pool, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	deadline := time.Now().Add(wait)
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		err = pool.Ping(ctx)
		if err == nil {
			return pool, nil
		}
		if time.Now().Add(delay).After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("connect to database: %w", err)
		}
		logger.Warn("database not reachable yet, retrying", "error", err, "retry_in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
}

// setsMaxConns reports whether url chooses the pool size itself.
func setsMaxConns(url string) bool {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return false
	}
	_, ok := cfg.RuntimeParams["pool_max_conns"]
	return ok
}

// provider returns a goose provider over pool for the embedded migrations.
// A PostgreSQL advisory lock serialises replicas migrating at once.
func provider(pool *pgxpool.Pool) (*goose.Provider, *sql.DB, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, nil, fmt.Errorf("create migration lock: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, sqlDB, nil
}

// Migrate applies every pending migration and returns what it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]*goose.MigrationResult, error) {
	p, sqlDB, err := provider(pool)
	if err != nil {
		return nil, err
	}
	defer sqlDB.Close()
	results, err := p.Up(ctx)
	if err != nil {
		return results, fmt.Errorf("migrate up: %w", err)
	}
	return results, nil
}

// MigrationStatus reports every known migration and whether it is applied.
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) ([]*goose.MigrationStatus, error) {
	p, sqlDB, err := provider(pool)
	if err != nil {
		return nil, err
	}
	defer sqlDB.Close()
	status, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	return status, nil
}

// ErrUnavailable means the database cannot be reached or is not accepting
// work right now (see isUnavailable): the request may be fine, so callers
// answer 503 with Retry-After rather than 4xx or 500.
var ErrUnavailable = errors.New("database unavailable")

// Translate maps an error from a query to the caller's sentinels, keeping
// the original in the chain for logs: nil stays nil; pgx.ErrNoRows becomes
// notFound (when notFound is not nil); an outage (isUnavailable) becomes
// ErrUnavailable; a PostgreSQL error becomes codes["SQLSTATE/constraint"]
// or codes["SQLSTATE"] when either is set. Anything else is returned as it
// is.
func Translate(err, notFound error, codes map[string]error) error {
	switch {
	case err == nil:
		return nil
	case notFound != nil && errors.Is(err, pgx.ErrNoRows):
		return notFound
	case isUnavailable(err):
		return errors.Join(ErrUnavailable, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		for _, key := range []string{pgErr.Code + "/" + pgErr.ConstraintName, pgErr.Code} {
			if sentinel, ok := codes[key]; ok {
				return errors.Join(sentinel, err)
			}
		}
	}
	return err
}

// isUnavailable reports whether err means the database cannot be reached or
// is not accepting work right now (connection refused or lost, shutting
// down, starting up, out of connections), as opposed to a bad query.
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08": // connection_exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutdown, crash, starting up
			pgErr.Code == "53300": // too_many_connections
			return true
		}
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || pgconn.Timeout(err)
}
