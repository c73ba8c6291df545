package clusters

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// readsRefused has a series per namespace whose reads were refused, and
// only while that namespace has accesses (Set.Remove drops it).
var readsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "metrics_operator_remote_reads_refused_total",
	Help: "Reads of remote clusters refused, and tried again shortly, because as many workers as --max-remote-reads-per-namespace " +
		"allows waited on the clusters of the accesses of the same namespace already; by that namespace.",
}, []string{"namespace"})

func init() {
	metrics.Registry.MustRegister(readsRefused)
}
