// Package metrics keeps every Prometheus metric Valhalla exports, in a
// registry of its own (no global state), and renders them in the Prometheus
// text exposition format. The JSON metrics endpoint reads the same counters
// through Snapshot, so the two can never disagree.
package metrics

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// namespace prefixes every Valhalla metric.
const namespace = "valhalla"

// Unmatched is the operation label of requests that match no operation of
// the contract (unknown paths, wrong methods), so that the label's values
// stay bounded by the contract.
const Unmatched = "unmatched"

// ContentType is the media type of WriteText's output: the Prometheus text
// exposition format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4"

// BuildInfo describes the running binary; it becomes valhalla_build_info.
type BuildInfo struct {
	Version   string
	Revision  string
	GoVersion string
}

// Metrics holds the server's metrics. Build it with New; its methods are
// safe for concurrent use.
type Metrics struct {
	registry *prometheus.Registry

	requests           *prometheus.CounterVec
	requestDuration    *prometheus.HistogramVec
	inFlight           prometheus.Gauge
	logsWritten        *prometheus.CounterVec
	validationFailures *prometheus.CounterVec
	checkUp            *prometheus.GaugeVec
	checkDuration      *prometheus.GaugeVec
	acquireDuration    prometheus.Histogram
	acquiresWaiting    prometheus.Gauge
	writeGroups        prometheus.Histogram
	sealLag            prometheus.Histogram
	sealedEntries      prometheus.Counter
	sequencer          prometheus.Gauge
	maintainer         prometheus.Gauge
	retentionRunner    prometheus.Gauge

	ledger atomic.Pointer[func(context.Context) (treeSize, unsealed int64, err error)]

	pool atomic.Pointer[pgxpool.Pool]
}

// New returns the server's metrics, registered with a fresh registry
// together with the Go runtime and process collectors and build info.
func New(build BuildInfo) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests served, by operation (the contract's operationId, or \"unmatched\") and status code.",
		}, []string{"operation", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to serve an HTTP request, by operation and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"operation", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		logsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "logs_written_total",
			Help: "System log entries stored, by level.",
		}, []string{"level"}),
		validationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "validation_failures_total",
			Help: "Requests refused as invalid (422 validation-failed problems), by operation.",
		}, []string{"operation"}),
		checkUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "readiness", Name: "check_up",
			Help: "Whether the last run of each readiness check passed (1) or failed (0).",
		}, []string{"check"}),
		checkDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "readiness", Name: "check_duration_seconds",
			Help: "How long the last run of each readiness check took.",
		}, []string{"check"}),
		acquireDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "db_pool", Name: "acquire_duration_seconds",
			Help:    "Time to acquire a connection from the database pool, waiting included.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}),
		acquiresWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "db_pool", Name: "waiting_acquires",
			Help: "Callers waiting to acquire a connection from the database pool.",
		}),
		writeGroups: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "write_group_entries",
			Help:    "Single writes committed together by one statement (group commit); its count is the statements.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		sealLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "ledger", Name: "seal_lag_seconds",
			Help:    "Time from the commit of an entry (its timestamp without track_commit_timestamp) to the commit of the seal pass that gave it its seq (observed by the sequencer).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		sealedEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "ledger", Name: "sealed_entries_total",
			Help: "Entries this server sealed as the sequencer.",
		}),
		sequencer: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "ledger", Name: "sequencer",
			Help: "1 while this server is the ledger's sequencer, else 0.",
		}),
		maintainer: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "lifecycle", Name: "maintainer",
			Help: "1 while this server is the partition maintainer, else 0.",
		}),
		retentionRunner: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "lifecycle", Name: "retention_runner",
			Help: "1 while this server is the retention runner, else 0 (always 0 without a retention).",
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels describe the running binary.",
		ConstLabels: prometheus.Labels{
			"version": build.Version, "revision": build.Revision, "goversion": build.GoVersion,
		},
	})
	buildInfo.Set(1)
	m.registry.MustRegister(
		m.requests, m.requestDuration, m.inFlight, m.logsWritten, m.validationFailures,
		m.checkUp, m.checkDuration, m.acquireDuration, m.acquiresWaiting, m.writeGroups, buildInfo,
		m.sealLag, m.sealedEntries, m.sequencer, m.maintainer, m.retentionRunner, ledgerCollector{m: m},
		poolCollector{m: m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Register adds collectors of another package (such as the sinks'
// deliverers) to the metrics served; call it before serving.
func (m *Metrics) Register(cs ...prometheus.Collector) { m.registry.MustRegister(cs...) }

// WriteText writes every metric to w in the text exposition format
// (ContentType). It returns an error when a collector fails or w does.
func (m *Metrics) WriteText(w io.Writer) error {
	families, err := m.registry.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("encode metric %s: %w", f.GetName(), err)
		}
	}
	return nil
}

// RequestStarted counts a request in flight until the returned func is
// called with its operation (Unmatched when none), status code and duration.
func (m *Metrics) RequestStarted() (finished func(operation string, code int, d time.Duration)) {
	m.inFlight.Inc()
	return func(operation string, code int, d time.Duration) {
		m.inFlight.Dec()
		c := strconv.Itoa(code)
		m.requests.WithLabelValues(operation, c).Inc()
		m.requestDuration.WithLabelValues(operation, c).Observe(d.Seconds())
	}
}

// LogWritten counts one stored system log entry of level.
func (m *Metrics) LogWritten(level string) { m.logsWritten.WithLabelValues(level).Inc() }

// WriteGroup records a group commit of n single writes
// (logstore.WithGroupObserver).
func (m *Metrics) WriteGroup(n int) { m.writeGroups.Observe(float64(n)) }

// Sealed records a seal pass of the sequencer (ledger.SealerOptions.Sealed).
func (m *Metrics) Sealed(entries int, _ int64, lags []time.Duration) {
	m.sealedEntries.Add(float64(entries))
	for _, l := range lags {
		m.sealLag.Observe(l.Seconds())
	}
}

// Sequencing records whether this server is the sequencer
// (ledger.SealerOptions.Leading).
func (m *Metrics) Sequencing(leading bool) { m.sequencer.Set(gaugeValue(leading)) }

// Maintaining records whether this server is the partition maintainer,
// Retaining whether it is the retention runner (lifecycle.ServeOptions).
func (m *Metrics) Maintaining(leading bool) { m.maintainer.Set(gaugeValue(leading)) }

// Retaining: see Maintaining.
func (m *Metrics) Retaining(leading bool) { m.retentionRunner.Set(gaugeValue(leading)) }

// gaugeValue is 1 for true, 0 for false.
func gaugeValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ObserveLedger reports the ledger's tree size and unsealed entries from
// now on, read with stats at each scrape.
func (m *Metrics) ObserveLedger(stats func(context.Context) (treeSize, unsealed int64, err error)) {
	m.ledger.Store(&stats)
}

// ledgerScrapeTimeout bounds the ledger's query at a scrape.
const ledgerScrapeTimeout = 2 * time.Second

var (
	ledgerSizeDesc = prometheus.NewDesc(namespace+"_ledger_tree_size",
		"Entries sealed into the ledger (the latest seq).", nil, nil)
	ledgerUnsealedDesc = prometheus.NewDesc(namespace+"_ledger_unsealed_entries",
		"Entries stored and waiting to be sealed.", nil, nil)
)

// ledgerCollector reads the ledger's gauges from the database at each scrape.
type ledgerCollector struct{ m *Metrics }

func (c ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ledgerSizeDesc
	ch <- ledgerUnsealedDesc
}

func (c ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	stats := c.m.ledger.Load()
	if stats == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ledgerScrapeTimeout)
	defer cancel()
	size, unsealed, err := (*stats)(ctx)
	if err != nil {
		return // absent rather than wrong while the database is down
	}
	ch <- prometheus.MustNewConstMetric(ledgerSizeDesc, prometheus.GaugeValue, float64(size))
	ch <- prometheus.MustNewConstMetric(ledgerUnsealedDesc, prometheus.GaugeValue, float64(unsealed))
}

// ValidationFailed counts a request to operation refused as invalid.
func (m *Metrics) ValidationFailed(operation string) {
	m.validationFailures.WithLabelValues(operation).Inc()
}

// ObserveCheck records the outcome of one run of a readiness check.
func (m *Metrics) ObserveCheck(name string, ok bool, d time.Duration) {
	up := 0.0
	if ok {
		up = 1
	}
	m.checkUp.WithLabelValues(name).Set(up)
	m.checkDuration.WithLabelValues(name).Set(d.Seconds())
}

// ObservePool reports pool's connections from now on. Call it once the pool
// is open; until then the pool metrics are absent.
func (m *Metrics) ObservePool(pool *pgxpool.Pool) { m.pool.Store(pool) }

// AcquireTracer returns a pgxpool.AcquireTracer that measures how long each
// acquire takes and how many are waiting; install it on the pool's config.
func (m *Metrics) AcquireTracer() pgxpool.AcquireTracer { return acquireTracer{m: m} }

type acquireStartKey struct{}

type acquireTracer struct{ m *Metrics }

func (t acquireTracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	t.m.acquiresWaiting.Inc()
	return context.WithValue(ctx, acquireStartKey{}, time.Now())
}

func (t acquireTracer) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	t.m.acquiresWaiting.Dec()
	if start, ok := ctx.Value(acquireStartKey{}).(time.Time); ok {
		t.m.acquireDuration.Observe(time.Since(start).Seconds())
	}
}

// PoolStats are the database pool's gauges.
type PoolStats struct {
	TotalConns, IdleConns, AcquiredConns, ConstructingConns, MaxConns int32
	// EmptyAcquireWait is the time acquires spent waiting because every
	// connection was in use, since the pool opened.
	EmptyAcquireWait time.Duration
}

// poolStats reads the observed pool's gauges; ok is false before ObservePool.
func (m *Metrics) poolStats() (PoolStats, bool) {
	pool := m.pool.Load()
	if pool == nil {
		return PoolStats{}, false
	}
	s := pool.Stat()
	return PoolStats{
		TotalConns:        s.TotalConns(),
		IdleConns:         s.IdleConns(),
		AcquiredConns:     s.AcquiredConns(),
		ConstructingConns: s.ConstructingConns(),
		MaxConns:          s.MaxConns(),
		EmptyAcquireWait:  s.EmptyAcquireWaitTime(),
	}, true
}

// poolCollector reports the pool's gauges at each scrape.
type poolCollector struct{ m *Metrics }

var (
	poolOpenDesc = prometheus.NewDesc(namespace+"_db_pool_open_connections",
		"Open connections in the database pool (idle, acquired or being established).", nil, nil)
	poolIdleDesc = prometheus.NewDesc(namespace+"_db_pool_idle_connections",
		"Idle connections in the database pool.", nil, nil)
	poolAcquiredDesc = prometheus.NewDesc(namespace+"_db_pool_acquired_connections",
		"Connections acquired from the database pool (in use).", nil, nil)
	poolMaxDesc = prometheus.NewDesc(namespace+"_db_pool_max_connections",
		"Size limit of the database pool.", nil, nil)
	poolEmptyWaitDesc = prometheus.NewDesc(namespace+"_db_pool_empty_acquire_wait_seconds_total",
		"Time acquires spent waiting because every connection of the database pool was in use.", nil, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolOpenDesc, poolIdleDesc, poolAcquiredDesc, poolMaxDesc, poolEmptyWaitDesc} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.m.poolStats()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(poolOpenDesc, prometheus.GaugeValue, float64(s.TotalConns))
	ch <- prometheus.MustNewConstMetric(poolIdleDesc, prometheus.GaugeValue, float64(s.IdleConns))
	ch <- prometheus.MustNewConstMetric(poolAcquiredDesc, prometheus.GaugeValue, float64(s.AcquiredConns))
	ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(s.MaxConns))
	ch <- prometheus.MustNewConstMetric(poolEmptyWaitDesc, prometheus.CounterValue, s.EmptyAcquireWait.Seconds())
}

// Snapshot is what the JSON metrics endpoint shows, read from the very
// counters WriteText renders.
type Snapshot struct {
	// RequestsTotal counts completed requests, whatever their operation or status.
	RequestsTotal int64
	// RequestsInFlight counts requests being served.
	RequestsInFlight int64
	// LogsWrittenTotal counts stored entries, whatever their level.
	LogsWrittenTotal int64
	// Pool is zero before ObservePool.
	Pool PoolStats
}

// Snapshot reads the counters behind the JSON metrics endpoint.
func (m *Metrics) Snapshot() Snapshot {
	pool, _ := m.poolStats()
	return Snapshot{
		RequestsTotal:    int64(sum(m.requests)),
		RequestsInFlight: int64(sum(m.inFlight)),
		LogsWrittenTotal: int64(sum(m.logsWritten)),
		Pool:             pool,
	}
}

// sum adds up the values of every counter or gauge c collects.
func sum(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	total := 0.0
	for metric := range ch {
		var out dto.Metric
		if err := metric.Write(&out); err != nil {
			continue
		}
		total += out.GetCounter().GetValue() + out.GetGauge().GetValue()
	}
	return total
}
