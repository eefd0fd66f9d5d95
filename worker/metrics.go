package worker

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/partita-dev/partita/processor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the worker's Prometheus registry (its own, not the global one).
type metrics struct {
	reg        *prometheus.Registry
	handled    *prometheus.HistogramVec
	rebalances *prometheus.CounterVec
	requests   *prometheus.CounterVec
	lateness   *prometheus.HistogramVec
	steps      *prometheus.HistogramVec

	mu sync.Mutex
	rt *processor.Runtime
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		handled: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "partita_handler_duration_seconds", Help: "Time to handle one record, by entity or view group.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10),
		}, []string{"group"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "partita_rebalances_total", Help: "Partition assignments this worker received, by group.",
		}, []string{"group"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "partita_http_requests_total", Help: "HTTP requests served, by status code.",
		}, []string{"code"}),
		lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "partita_timer_lateness_seconds", Help: "How long after its due time a timer's fire was written, by entity.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"entity"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "partita_workflow_step_seconds",
			Help:    "Workflow steps' attempts, by workflow, step and outcome (done; retried: it failed and another attempt follows; failed: it failed and was the last), and how long each took from being issued. Its _count with outcome=\"retried\" counts the retries.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}, []string{"workflow", "step", "outcome"}),
	}
	m.reg.MustRegister(m.handled, m.rebalances, m.requests, m.lateness, m.steps, m, collectors.NewGoCollector())
	return m
}

func (m *metrics) attach(rt *processor.Runtime) {
	m.mu.Lock()
	m.rt = rt
	m.mu.Unlock()
}

// Handled and Rebalanced implement processor.Observer.
func (m *metrics) Handled(group string, d time.Duration) {
	m.handled.WithLabelValues(group).Observe(d.Seconds())
}
func (m *metrics) Rebalanced(group string, _ []int32) { m.rebalances.WithLabelValues(group).Inc() }

// WorkflowStep implements processor.WorkflowObserver.
func (m *metrics) WorkflowStep(workflow, step, outcome string, took time.Duration) {
	m.steps.WithLabelValues(workflow, step, outcome).Observe(took.Seconds())
}

// TimerFired implements processor.TimerObserver.
func (m *metrics) TimerFired(entity string, lateness time.Duration) {
	m.lateness.WithLabelValues(entity).Observe(lateness.Seconds())
}

var (
	descProcessed   = prometheus.NewDesc("partita_records_processed_total", "Records handled by this worker's entities and views.", nil, nil)
	descDuplicates  = prometheus.NewDesc("partita_dedup_hits_total", "Redelivered commands answered from the record instead of being applied again.", nil, nil)
	descDead        = prometheus.NewDesc("partita_dead_letters_total", "Records sent to the dead-letter topic.", nil, nil)
	descRerouted    = prometheus.NewDesc("partita_rerouted_total", "Records re-routed to their subject's partition.", nil, nil)
	descConsumerLag = prometheus.NewDesc("partita_consumer_lag_records", "Input records not yet processed, by group and partition.", []string{"group", "partition"}, nil)
	descRestored    = prometheus.NewDesc("partita_recovery_restored_records", "Table records restored, by group and partition.", []string{"group", "partition"}, nil)
	descRestoreAll  = prometheus.NewDesc("partita_recovery_total_records", "Table records to restore, by group and partition.", []string{"group", "partition"}, nil)
	descRecovered   = prometheus.NewDesc("partita_partition_recovered", "1 once the partition's table is restored and it processes.", []string{"group", "partition"}, nil)
	descViewLag     = prometheus.NewDesc("partita_view_lag_records", "View table records not yet applied to this worker's replica.", []string{"view", "partition"}, nil)
	descViewAge     = prometheus.NewDesc("partita_view_lag_seconds", "Age of the last update applied to this worker's replica.", []string{"view", "partition"}, nil)
	descTimers      = prometheus.NewDesc("partita_timers_pending", "Pending timers (asks waiting included) of the partitions this worker owns, by entity.", []string{"entity"}, nil)
	descOverdue     = prometheus.NewDesc("partita_timers_overdue", "Pending timers past their due time, by entity.", []string{"entity"}, nil)
	descInstances   = prometheus.NewDesc("partita_workflow_instances", "Workflow instances by status, from this worker's replica of the workflow's status view.", []string{"workflow", "status"}, nil)
)

// Describe and Collect make the runtime's state a collector, read at scrape time.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProcessed, descDuplicates, descDead, descRerouted, descConsumerLag, descRestored, descRestoreAll, descRecovered, descViewLag, descViewAge, descTimers, descOverdue, descInstances} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	rt := m.rt
	m.mu.Unlock()
	if rt == nil {
		return
	}
	s := rt.Stats()
	ch <- prometheus.MustNewConstMetric(descProcessed, prometheus.CounterValue, float64(s.Processed.Load()))
	ch <- prometheus.MustNewConstMetric(descDuplicates, prometheus.CounterValue, float64(s.Duplicates.Load()))
	ch <- prometheus.MustNewConstMetric(descDead, prometheus.CounterValue, float64(s.DeadLetters.Load()))
	ch <- prometheus.MustNewConstMetric(descRerouted, prometheus.CounterValue, float64(s.Rerouted.Load()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range rt.Partitions(ctx) {
		part := strconv.Itoa(int(p.Partition))
		recovered := 0.0
		if p.Recovered {
			recovered = 1
		}
		ch <- prometheus.MustNewConstMetric(descConsumerLag, prometheus.GaugeValue, float64(p.Lag), p.Group, part)
		ch <- prometheus.MustNewConstMetric(descRestored, prometheus.GaugeValue, float64(p.Restored), p.Group, part)
		ch <- prometheus.MustNewConstMetric(descRestoreAll, prometheus.GaugeValue, float64(p.Total), p.Group, part)
		ch <- prometheus.MustNewConstMetric(descRecovered, prometheus.GaugeValue, recovered, p.Group, part)
	}
	for entity, ts := range rt.TimerStats() {
		ch <- prometheus.MustNewConstMetric(descTimers, prometheus.GaugeValue, float64(ts.Pending), entity)
		ch <- prometheus.MustNewConstMetric(descOverdue, prometheus.GaugeValue, float64(ts.Overdue), entity)
	}
	for _, w := range workflowStatuses(ctx, rt) {
		for status, n := range w.Counts {
			ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(n), w.Name, status)
		}
	}
	for view := range rt.Views() {
		lag, err := rt.Lag(view)
		if err != nil {
			continue
		}
		for _, l := range lag {
			part := strconv.Itoa(int(l.Partition))
			ch <- prometheus.MustNewConstMetric(descViewLag, prometheus.GaugeValue, float64(l.Gap), view, part)
			ch <- prometheus.MustNewConstMetric(descViewAge, prometheus.GaugeValue, l.Age.Seconds(), view, part)
		}
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// instrument counts responses by status code.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		m.requests.WithLabelValues(strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (write
// deadlines, flushes of server-sent events).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush keeps server-sent events streaming through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
