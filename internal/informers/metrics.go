package informers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	activeInformers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "metrics_operator_informers_active",
		Help: "Shared watches running, one per cluster, resource and namespace scope.",
	})
	listsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metrics_operator_join_lists_total",
		Help: "LISTs made to fill a metric that joined a running watch.",
	})
	relistsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metrics_operator_watch_relists_total",
		Help: "Full LISTs a running watch made to resume after it expired or broke (API server restart, etcd compaction); each applies the deletions the watch missed.",
	})
)

func init() {
	metrics.Registry.MustRegister(activeInformers, listsTotal, relistsTotal)
}
