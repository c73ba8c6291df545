package events

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metrics_operator_events_total",
		Help: "Watch events applied to metrics, by type (upsert, delete, replace).",
	}, []string{"type"})
	eventDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "metrics_operator_event_to_metrics_seconds",
		Help:    "Time from receiving a watch event to the interested metrics' series (and so /metrics) reflecting it.",
		Buckets: []float64{0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5},
	}, []string{"type"})
	evaluationPanics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metrics_operator_evaluation_panics_total",
		Help: "Panics recovered while evaluating a metric, by path (upsert, delete, relist, poll); each disables its metric until its spec changes.",
	}, []string{"path"})
)

func init() {
	metrics.Registry.MustRegister(eventsTotal, eventDuration, evaluationPanics)
}

// eventType is the series of one type of event, looked up once rather
// than by label values at every event.
type eventType struct {
	total    prometheus.Counter
	duration prometheus.Observer
}

var upsertEvents, deleteEvents, replaceEvents = newEventType("upsert"), newEventType("delete"), newEventType("replace")

func newEventType(typ string) eventType {
	return eventType{total: eventsTotal.WithLabelValues(typ), duration: eventDuration.WithLabelValues(typ)}
}

func (t eventType) observe(start time.Time) {
	t.total.Inc()
	t.duration.Observe(time.Since(start).Seconds())
}
