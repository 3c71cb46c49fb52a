package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/net/netutil"

	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/contract"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/delivery"
	"github.com/valhalla-platform/valhalla/internal/follow"
	"github.com/valhalla-platform/valhalla/internal/health"
	"github.com/valhalla-platform/valhalla/internal/httpapi"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/lifecycle"
	"github.com/valhalla-platform/valhalla/internal/logging"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/metrics"
	"github.com/valhalla-platform/valhalla/internal/pgcluster"
	"github.com/valhalla-platform/valhalla/internal/ratelimit"
	"github.com/valhalla-platform/valhalla/internal/tracing"
)

// serve runs the API until ctx is cancelled, then shuts down gracefully:
// readiness fails at once (and new requests are still served for the drain
// delay), in-flight requests finish (bounded by the shutdown timeout), then
// the pool and any local cluster close.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("serve", serveFlags, args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", rest)
	}
	logger := logging.New(stdout, cfg.LogFormat, cfg.LogLevel)

	traceCfg, err := tracing.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	tracerProvider, err := tracing.NewProvider(ctx, traceCfg, version)
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tracerProvider.Shutdown(flushCtx); err != nil {
			logger.Warn("flush traces", "error", err)
		}
	}()
	if traceCfg.Endpoint != "" {
		logger.Info("exporting traces over OTLP", "endpoint", traceCfg.Endpoint, "service", traceCfg.ServiceName)
	}

	m := metrics.New(metrics.BuildInfo{Version: version, Revision: revision(), GoVersion: runtime.Version()})
	pool, closeDB, err := openDatabase(ctx, cfg, getenv, logger, false,
		database.WithTracerProvider(tracerProvider), database.WithAcquireTracer(m.AcquireTracer()),
		database.WithStatementTimeout(cfg.Limits.StatementTimeout))
	if err != nil {
		return err
	}
	defer closeDB()
	readPool, err := openReadPool(ctx, pool, cfg.Limits)
	if err != nil {
		return err
	}
	defer readPool.Close() // before closeDB stops a local cluster
	m.ObservePool(pool)
	applied, err := database.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	for _, m := range applied {
		logger.Info("migration applied", "version", m.Source.Version, "duration", m.Duration)
	}
	tokens := auth.NewStore(pool)
	if err := firstToken(ctx, tokens, cfg.BootstrapToken, stderr, logger); err != nil {
		return err
	}
	// The token cache listens until the server has drained, before the pool
	// closes.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	watched := make(chan struct{})
	go func() { defer close(watched); tokens.Watch(watchCtx, logger) }()
	defer func() { stopWatch(); <-watched }()

	key, err := ledger.LoadOrCreateKey(cfg.LedgerKeyFile)
	if err != nil {
		return err
	}
	logger.Info("ledger verifier key (give it to auditors: valhalla verify --key)", "key", key.Verifier, "key_file", cfg.LedgerKeyFile)
	readConns := int(readPool.Config().MaxConns)
	perToken := cfg.Limits.DBReadConnsPerToken
	if perToken <= 0 {
		perToken = max(1, readConns/8)
	}
	batchConns := cfg.Limits.DBBatchConns
	if batchConns <= 0 {
		batchConns = max(2, runtime.GOMAXPROCS(0))
	}
	store := logstore.New(pool, logstore.WithGroupObserver(m.WriteGroup), logstore.WithReadPool(readPool),
		logstore.WithReadShare(ratelimit.NewShare(readConns, perToken), readClient), logstore.WithBatchWriters(batchConns))
	ledgerReader := ledger.NewReader(pool)
	m.ObserveLedger(func(ctx context.Context) (int64, int64, error) {
		s, err := ledgerReader.Stats(ctx)
		return s.TreeSize, s.Unsealed, err
	})
	checker := health.NewChecker(version, cfg.ReadyTimeout, logger, health.Check{Name: "database", Run: pool.Ping})
	// The ledger degrades health, not readiness: a lagging sequencer is
	// no reason to send this server less traffic.
	interval := cfg.SealInterval
	if interval == 0 {
		interval = ledger.DefaultSealInterval
	}
	checker.AlsoForHealth(health.Check{Name: "ledger", Run: ledgerReader.HealthCheck(maxSealLag(interval))})
	// So do failing sinks: a destination that is down is no reason either.
	checker.AlsoForHealth(health.Check{Name: "sinks", Run: delivery.NewStore(pool).HealthCheck(delivery.DefaultFailuresToOpen)})
	deliveries := delivery.NewManager(delivery.Options{
		Pool:          pool,
		Connect:       dedicatedConn(pool, "sink deliverer"),
		Store:         store,
		Encode:        httpapi.EncodeEntry,
		BatchSize:     cfg.Sinks.BatchSize,
		Linger:        cfg.Sinks.Linger,
		Timeout:       cfg.Sinks.Timeout,
		ProbeInterval: cfg.Sinks.ProbeInterval,
		Logger:        logger,
	})
	m.Register(deliveries.Metrics().Collectors()...)
	// The deliverers stop with the server, before the pool closes; one
	// stopped mid-batch leaves its cursor, and whoever delivers next
	// sends that batch again.
	deliverCtx, stopDelivering := context.WithCancel(context.WithoutCancel(ctx))
	delivered := make(chan struct{})
	go func() { defer close(delivered); deliveries.Run(deliverCtx) }()
	defer func() { stopDelivering(); <-delivered }()
	// The live tail's poller runs until the server has drained, before the
	// pool closes; shutdown ends every stream first (RegisterOnShutdown).
	hub := follow.New(follow.Options{Store: store, Encode: httpapi.EncodeEntry, MaxStreams: cfg.MaxStreams, Logger: logger})
	followCtx, stopFollow := context.WithCancel(context.WithoutCancel(ctx))
	followed := make(chan struct{})
	go func() { defer close(followed); hub.Run(followCtx) }()
	defer func() { stopFollow(); <-followed }()
	handler, err := httpapi.NewServer(httpapi.Deps{
		Follow:         hub,
		Store:          store,
		Ledger:         ledgerReader,
		SealInterval:   cfg.SealInterval,
		Tokens:         tokens,
		Checker:        checker,
		Metrics:        m,
		Logger:         logger,
		TracerProvider: tracerProvider,
		FrameAncestors: cfg.FrameAncestors,
		Limits:         apiLimits(cfg.Limits),
		MetricsApart:   cfg.MetricsAddr != "",
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if cfg.Limits.MaxConnections > 0 {
		// Past the cap, new connections wait in the kernel's backlog.
		ln = netutil.LimitListener(ln, cfg.Limits.MaxConnections)
	}
	idle := newIdleCap(cfg.Limits.MaxIdleConnections)
	srv := httpServer(handler, cfg.Limits, logger)
	srv.ConnState = idle.track
	srv.RegisterOnShutdown(hub.Close)
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.MetricsAddr, err)
		}
		metricsSrv := httpServer(httpapi.MetricsHandler(handler), cfg.Limits, logger)
		go func() {
			if err := metricsSrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				served <- err
			}
		}()
		defer metricsSrv.Close()
		logger.Info("serving metrics", "addr", mln.Addr().String())
	}
	// Key expiry runs until shutdown begins and is awaited, like the token
	// watcher, before the pool closes.
	expireCtx, stopExpiring := context.WithCancel(ctx)
	expired := make(chan struct{})
	go func() { defer close(expired); expireKeys(expireCtx, store, logger, keyCleanupInterval) }()
	defer func() { stopExpiring(); <-expired }()
	sealed := make(chan struct{})
	if cfg.SealInterval > 0 {
		// The sequencer stops with the server, before the pool closes.
		sealer := ledger.NewSealer(ledger.SealerOptions{
			Connect:  dedicatedConn(pool, "ledger sequencer"),
			Key:      key,
			Interval: cfg.SealInterval,
			Logger:   logger,
			Sealed: func(entries int, size int64, lags []time.Duration) {
				m.Sealed(entries, size, lags)
				hub.Wake() // the streams here get the entries now
			},
			Leading: m.Sequencing,
		})
		sealCtx, stopSealing := context.WithCancel(context.WithoutCancel(ctx))
		go func() { defer close(sealed); sealer.Run(sealCtx) }()
		defer func() { stopSealing(); <-sealed }()
	} else {
		close(sealed)
		logger.Info("ledger: this server never seals (seal interval 0)")
	}
	// The partition maintainer and the retention runner (one server at a
	// time each: see internal/lifecycle) stop with the server, before the
	// pool closes.
	maintainer := lifecycle.New(pool, lifecycle.Options{
		Interval: cfg.PartitionInterval, Retention: cfg.Retention, Key: key, Logger: logger,
	})
	maintainCtx, stopMaintaining := context.WithCancel(context.WithoutCancel(ctx))
	maintained := make(chan struct{})
	go func() {
		defer close(maintained)
		maintainer.Serve(maintainCtx, lifecycle.ServeOptions{
			Connect: dedicatedConn(pool, "lifecycle"),
			Every:   cfg.MaintainInterval,
			Leading: func(d lifecycle.Duty, leading bool) {
				if d == lifecycle.Retaining {
					m.Retaining(leading)
				} else {
					m.Maintaining(leading)
				}
			},
		})
	}()
	defer func() { stopMaintaining(); <-maintained }()
	base := "http://" + ln.Addr().String()
	logger.Info("listening", "addr", ln.Addr().String(), "version", version,
		"viewer", base+"/ui/", "docs", base+"/docs/")

	select {
	case err := <-served:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "drain_delay", cfg.DrainDelay, "drain_timeout", cfg.ShutdownTimeout)
	checker.Drain()
	if cfg.DrainDelay > 0 {
		select {
		case err := <-served:
			return fmt.Errorf("serve http: %w", err)
		case <-time.After(cfg.DrainDelay):
		}
	}
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

// maxSealLag is the wait past which the ledger check fails: 10 seal
// intervals.
func maxSealLag(interval time.Duration) time.Duration { return 10 * interval }

// httpServer returns a server of handler with l's timeouts and header
// limit, logging its errors to logger.
func httpServer(handler http.Handler, l limits, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		// Twice the limit, so that the handler answers a block over it with
		// a problem (httpapi.Limits.MaxHeaderBytes), not net/http in text.
		MaxHeaderBytes: 2 * l.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// keyCleanupInterval is how often expired idempotency keys are deleted.
const keyCleanupInterval = 10 * time.Minute

// expireKeys deletes expired idempotency keys every interval until ctx is
// done. (A lookup forgets an expired key by itself; this keeps the table
// small.) A failure, such as the database being down, is logged and retried
// at the next tick.
func expireKeys(ctx context.Context, store *logstore.Store, logger *slog.Logger, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := store.ExpireKeys(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("expire idempotency keys", "error", err)
		case n > 0:
			logger.Info("expired idempotency keys", "count", n)
		}
	}
}

// firstToken makes sure someone can get in. When no token exists at all, the
// bootstrap token (if set) becomes an all-scopes token named "bootstrap";
// without one, an all-scopes token named "admin" is minted and printed to
// stderr, this once. Once any token exists it does nothing.
func firstToken(ctx context.Context, tokens *auth.Store, bootstrap string, stderr io.Writer, logger *slog.Logger) error {
	scopes, err := contract.Scopes()
	if err != nil {
		return err
	}
	name, token := "bootstrap", bootstrap
	if token == "" {
		name, token = "admin", auth.Mint()
	} else if !auth.ValidToken(token) {
		return errors.New("VALHALLA_BOOTSTRAP_TOKEN must look like vhl_<8-32 letters or digits>_<22-128 letters or digits>")
	}
	created, err := tokens.CreateFirst(ctx, name, token, scopes)
	if err != nil {
		return fmt.Errorf("first token: %w", err)
	}
	switch {
	case !created && bootstrap != "":
		logger.Info("tokens exist; VALHALLA_BOOTSTRAP_TOKEN is ignored")
	case created && bootstrap != "":
		logger.Info("bootstrap token stored", "name", name, "scopes", scopes)
	case created:
		logger.Warn("no token existed: created one and printed it on stderr, this once", "name", name, "scopes", scopes)
		fmt.Fprintf(stderr, "valhalla: no token existed, so this one was created with scopes %s.\n"+
			"It is shown only now; store it safely (manage tokens with valhalla tokens create|list|revoke):\n\n    %s\n\n",
			strings.Join(scopes, ","), token)
	}
	return nil
}

// openDatabase connects to cfg.DatabaseURL or, when it is empty, starts the
// durable local cluster under cfg.DataDir; with attach, a cluster that
// serve already runs there is used as it is and left running. The returned
// func closes the pool and then stops the local cluster.
func openDatabase(ctx context.Context, cfg config, getenv func(string) string, logger *slog.Logger, attach bool, opts ...database.Option) (*pgxpool.Pool, func(), error) {
	url := cfg.DatabaseURL
	var cluster *pgcluster.Cluster
	if url == "" {
		var err error
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{
			Dir:    cfg.DataDir,
			Fsync:  true,
			Logger: logger,
			Getenv: getenv,
			Attach: attach,
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
	pool, err := database.Open(ctx, url, cfg.DBWait, logger, opts...)
	if err != nil {
		stopCluster()
		return nil, nil, err
	}
	return pool, func() { pool.Close(); stopCluster() }, nil
}

// cliLogger is the logger of a command that is not serve: warnings and
// errors (or the configured level, if higher) as text on stderr.
func cliLogger(cfg config, stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: max(cfg.LogLevel, slog.LevelWarn)}))
}

// openMigrated opens the database as a command other than serve does
// (attached to a local cluster serve may run, warnings on stderr) and
// applies pending migrations. The returned func closes it.
func openMigrated(ctx context.Context, cfg config, getenv func(string) string, stderr io.Writer) (*pgxpool.Pool, func(), error) {
	pool, closeDB, err := openDatabase(ctx, cfg, getenv, cliLogger(cfg, stderr), true)
	if err != nil {
		return nil, nil, err
	}
	if _, err := database.Migrate(ctx, pool); err != nil {
		closeDB()
		return nil, nil, err
	}
	return pool, closeDB, nil
}

// readClient names the client a read is for, whose share of the read
// connections it takes: the caller's token, or "" for the server's own
// reads and callers without one.
func readClient(ctx context.Context) string {
	if caller, ok := auth.FromContext(ctx); ok {
		return "token:" + caller.Name
	}
	return ""
}

// openReadPool opens the reads' own pool: the main pool's settings with
// l.DBReadConns connections (0: a quarter of the main pool's, at least
// one) and statement timeout l.DBReadTimeout, so that reads cannot take
// the connections writes and readiness need.
func openReadPool(ctx context.Context, main *pgxpool.Pool, l limits) (*pgxpool.Pool, error) {
	cfg := main.Config()
	cfg.MaxConns = int32(l.DBReadConns)
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = max(1, main.Config().MaxConns/4)
	}
	cfg.MinConns = 0
	// A read is one process: parallel workers would let one client's
	// count take more of the database's cores than its share of the
	// connections says.
	cfg.ConnConfig.RuntimeParams["max_parallel_workers_per_gather"] = "0"
	if l.DBReadTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(l.DBReadTimeout.Milliseconds(), 10)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open read pool: %w", err)
	}
	return pool, nil
}

// revision is the commit the binary was built from: main.commit when set,
// else the VCS revision the go command stamped (with "-dirty" when the tree
// had changes), else "unknown".
func revision() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && rev != "unknown" {
		rev += "-dirty"
	}
	return rev
}

// apiLimits are the API's limits with the header limit of l.
func apiLimits(l limits) httpapi.Limits {
	api := l.API
	api.MaxHeaderBytes = l.MaxHeaderBytes
	return api
}

// dedicatedConn opens connections of their own for a job of this server
// (a duty, a sink's deliverer), configured as the pool's and named in
// pg_stat_activity.application_name "valhalla <job> <host> pid <pid>", so
// that pg_locks joined to it shows which server holds a duty
// (docs/scaling.md).
func dedicatedConn(pool *pgxpool.Pool, job string) func(ctx context.Context) (*pgx.Conn, error) {
	host, _ := os.Hostname()
	name := fmt.Sprintf("valhalla %s %s pid %d", job, host, os.Getpid())
	if len(name) > 63 { // PostgreSQL's NAMEDATALEN - 1
		name = name[:63]
	}
	return func(ctx context.Context) (*pgx.Conn, error) {
		cfg := pool.Config().ConnConfig.Copy()
		cfg.RuntimeParams["application_name"] = name
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		database.RegisterTypes(conn.TypeMap())
		return conn, nil
	}
}
