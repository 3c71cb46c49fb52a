package delivery

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Metrics are the sinks' Prometheus metrics: lag (read from the database
// at each scrape, so every server reports it), and deliveries, circuit
// state and whether this server delivers (from this server's deliverers).
type Metrics struct {
	sinks      *Store
	deliveries *prometheus.CounterVec
	entries    *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	state      *prometheus.GaugeVec
	delivers   *prometheus.GaugeVec
}

func newMetrics(sinks *Store) *Metrics {
	return &Metrics{
		sinks: sinks,
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "valhalla", Subsystem: "sink", Name: "deliveries_total",
			Help: "Delivery attempts by sink and outcome: delivered (a 2xx) or failed.",
		}, []string{"sink", "outcome"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "valhalla", Subsystem: "sink", Name: "delivered_entries_total",
			Help: "Entries acknowledged by the sink's destination (a repeat counts again).",
		}, []string{"sink"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "valhalla", Subsystem: "sink", Name: "delivery_duration_seconds",
			Help: "Time from sending a batch to its acknowledgement.", Buckets: prometheus.DefBuckets,
		}, []string{"sink"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "valhalla", Subsystem: "sink", Name: "circuit_state",
			Help: "The sink's circuit on the server that delivers it: 0 closed, 1 half-open (probing), 2 open.",
		}, []string{"sink"}),
		delivers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "valhalla", Subsystem: "sink", Name: "delivering",
			Help: "1 while this server is the one delivering the sink.",
		}, []string{"sink"}),
	}
}

// Collectors returns the collectors to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.deliveries, m.entries, m.duration, m.state, m.delivers, lagCollector{m.sinks}}
}

func (m *Metrics) delivered(sink string, entries int, d time.Duration) {
	m.deliveries.WithLabelValues(sink, "delivered").Inc()
	m.entries.WithLabelValues(sink).Add(float64(entries))
	m.duration.WithLabelValues(sink).Observe(d.Seconds())
}

func (m *Metrics) failed(sink string) { m.deliveries.WithLabelValues(sink, "failed").Inc() }

func (m *Metrics) circuit(sink string, s gobreaker.State) {
	v := map[gobreaker.State]float64{gobreaker.StateClosed: 0, gobreaker.StateHalfOpen: 1, gobreaker.StateOpen: 2}[s]
	m.state.WithLabelValues(sink).Set(v)
}

func (m *Metrics) delivering(sink string, on bool) {
	if on {
		m.delivers.WithLabelValues(sink).Set(1)
		m.state.WithLabelValues(sink).Set(0)
		return
	}
	m.delivers.DeleteLabelValues(sink)
	m.state.DeleteLabelValues(sink)
}

var (
	lagEntriesDesc = prometheus.NewDesc("valhalla_sink_lag_entries",
		"Sealed entries after the sink's cursor (not yet acknowledged, or not yet passed over by its filter).", []string{"sink"}, nil)
	lagSecondsDesc = prometheus.NewDesc("valhalla_sink_lag_seconds",
		"How long ago the first entry after the sink's cursor was sealed; 0 when caught up.", []string{"sink"}, nil)
	pausedDesc = prometheus.NewDesc("valhalla_sink_paused",
		"1 when the sink is paused (valhalla sinks pause).", []string{"sink"}, nil)
	failuresDesc = prometheus.NewDesc("valhalla_sink_consecutive_failures",
		"Failed delivery attempts in a row (0 after a 2xx).", []string{"sink"}, nil)
)

// lagCollector reads every sink's lag from the database at each scrape.
type lagCollector struct{ sinks *Store }

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagEntriesDesc
	ch <- lagSecondsDesc
	ch <- pausedDesc
	ch <- failuresDesc
}

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list, err := c.sinks.List(ctx)
	if err != nil {
		return // absent rather than wrong while the database is down
	}
	for _, s := range list {
		paused := 0.0
		if s.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(lagEntriesDesc, prometheus.GaugeValue, float64(s.LagEntries), s.Name)
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, s.LagSeconds, s.Name)
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, paused, s.Name)
		ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.GaugeValue, float64(s.Failures), s.Name)
	}
}
