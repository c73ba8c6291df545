package coordinator

import (
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The coordinator's own metrics, served beside the users' metrics.
var (
	exportsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metrics_operator_exports_total",
		Help: "OTLP pushes of one metric, by result (success, failure).",
	}, []string{"result"})
	exportDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "metrics_operator_export_duration_seconds",
		Help:    "Time one OTLP push took, successful or not.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	statusWritesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metrics_operator_status_writes_total",
		Help: "Status patches of metric objects, by result (success, failure).",
	}, []string{"result"})
	publishesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metrics_operator_publishes_total",
		Help: "Results handed to the coordinator by the polling and event-driven paths.",
	})
	changeToExport = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "metrics_operator_change_to_export_seconds",
		Help:    "Time from the first change of a metric not yet pushed to the successful push that carried it.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	})
	exportFailures = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "metrics_operator_datasink_export_failures",
		Help: "Consecutive failed pushes to a DataSink; 0 after a successful push. Retries back off exponentially.",
	}, []string{"datasink"})
	// turnsWaited is by namespace, as the bound is: it names the tenant
	// whose sinks wait.
	turnsWaited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metrics_operator_export_turns_waited_total",
		Help: "Times a DataSink's push was put off a fraction of a second because its namespace had --max-pushes-per-namespace " +
			"pushes running, by namespace; a DataSink still waiting counts again each time it asks.",
	}, []string{"namespace"})
	trackedMetrics = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "metrics_operator_tracked_metrics",
		Help: "Metric objects the coordinator holds results for, by update mode.",
	}, []string{"mode"})
	// notReady counts by reason, not by metric, so that its cardinality
	// stays bounded however many Metrics tenants create.
	notReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "metrics_operator_metrics_not_ready",
		Help: "Metric objects whose Ready condition, as last written to their status, is False, by kind and reason.",
	}, []string{"kind", "reason"})
)

func init() {
	metrics.Registry.MustRegister(exportsTotal, exportDuration, statusWritesTotal, publishesTotal, changeToExport, trackedMetrics,
		exportFailures, notReady, turnsWaited)
}

// countNotReady moves one metric's count in notReady from the Ready
// condition last written (nil: none) to the one just written (nil: the
// metric is gone).
func countNotReady(kind string, old, cur *Status) {
	if old != nil && old.Ready.Status == metav1.ConditionFalse {
		notReady.WithLabelValues(kind, old.Ready.Reason).Dec()
	}
	if cur != nil && cur.Ready.Status == metav1.ConditionFalse {
		notReady.WithLabelValues(kind, cur.Ready.Reason).Inc()
	}
}
