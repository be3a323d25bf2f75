package connect

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's per-connector Prometheus series.
type Metrics struct {
	recordsIn   *prometheus.CounterVec
	recordsOut  *prometheus.CounterVec
	batch       *prometheus.HistogramVec
	sourceLag   *prometheus.GaugeVec
	lagBytes    *prometheus.GaugeVec
	errors      *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	// Sink writes the target refused for its own sake (down, read-only,
	// throttling, full): retried, and whether one is failing now.
	writeRetries  *prometheus.CounterVec
	targetFailing *prometheus.GaugeVec
	retained      *prometheus.GaugeVec // connector, name, orphaned
	jobs          *jobCollectors
}

// jobCollectors serves the series of job plugins that have their own
// (Job implementations that are collectors), added as jobs are
// scheduled: an unchecked collector, describing nothing up front.
type jobCollectors struct {
	mu sync.Mutex
	by map[string]prometheus.Collector
}

func (j *jobCollectors) add(name string, c prometheus.Collector) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.by[name] = c
}

// Describe describes nothing: the jobs' series come and go with them.
func (j *jobCollectors) Describe(chan<- *prometheus.Desc) {}

// Collect gathers every job's series.
func (j *jobCollectors) Collect(ch chan<- prometheus.Metric) {
	j.mu.Lock()
	cs := make([]prometheus.Collector, 0, len(j.by))
	for _, c := range j.by {
		cs = append(cs, c)
	}
	j.mu.Unlock()
	for _, c := range cs {
		c.Collect(ch)
	}
}

func newMetrics() *Metrics {
	l := []string{"connector"}
	return &Metrics{
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eddy_connector_records_in_total",
			Help: "Records a connector's task took in: from its source, or from the log for a sink."}, l),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eddy_connector_records_out_total",
			Help: "Records a connector's task delivered: appended to the log, or written by a sink."}, l),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "eddy_connector_batch_seconds",
			Help:    "Time to take one batch through transforms, serialization and delivery, acknowledgement included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, l),
		sourceLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eddy_connector_source_lag_seconds",
			Help: "Time between a record's timestamp at the source and its durable append, for the last batch."}, l),
		lagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eddy_connector_source_lag_bytes",
			Help: "How far the source's acknowledged position is behind its upstream, in bytes of WAL or binlog (sources that can tell)."}, l),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eddy_connector_errors_total",
			Help: "Task failures and records that could not be handled."}, l),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eddy_connector_dead_letter_records_total",
			Help: "Records sent to the connector's dead-letter topic."}, l),
		writeRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eddy_connector_write_retries_total",
			Help: "Sink writes that failed for the target's sake (down, read-only, throttling, full, out of connections) and were retried whole."}, l),
		targetFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eddy_connector_target_failing",
			Help: "1 while a sink's writes are failing for the target's sake and being retried, else 0."}, l),
		retained: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eddy_source_retained_bytes",
			Help: "What an upstream keeps for a reader, in bytes (a PostgreSQL replication slot's WAL), as a source reports it; orphaned is true for one no configured connector reads."},
			[]string{"connector", "name", "orphaned"}),
		jobs: &jobCollectors{by: map[string]prometheus.Collector{}},
	}
}

// add creates a connector's series, so they read 0 before anything happens.
func (m *Metrics) add(name string) {
	m.recordsIn.WithLabelValues(name)
	m.recordsOut.WithLabelValues(name)
	m.batch.WithLabelValues(name)
	m.sourceLag.WithLabelValues(name)
	m.errors.WithLabelValues(name)
	m.deadLetters.WithLabelValues(name)
	m.writeRetries.WithLabelValues(name)
	m.targetFailing.WithLabelValues(name)
}

// Collectors lists the series for a Prometheus registry.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.recordsIn, m.recordsOut, m.batch, m.sourceLag, m.lagBytes, m.errors, m.deadLetters, m.writeRetries, m.targetFailing, m.retained, m.jobs}
}

// forget removes a deleted connector's series.
func (m *Metrics) forget(name string) {
	l := prometheus.Labels{"connector": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.recordsIn, m.recordsOut, m.batch, m.sourceLag, m.lagBytes, m.errors, m.deadLetters, m.writeRetries, m.targetFailing, m.retained,
	} {
		v.DeletePartialMatch(l)
	}
}
