package sharding

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	shardMembers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "metrics_operator_shard_members",
		Help: "Replicas this replica sees as live shard members (their Leases renewed within the lease duration), itself included. Absent without --sharding.",
	})
	ownedMetrics = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "metrics_operator_owned_metrics",
		Help: "Metric objects (of all four kinds) this replica serves as their shard owner. Absent without --sharding.",
	})
)

// register adds the gauges to the served registry; only an operator run
// with sharding shows them.
func register() {
	for _, c := range []prometheus.Collector{shardMembers, ownedMetrics} {
		_ = metrics.Registry.Register(c) // AlreadyRegistered: a second operator in the process
	}
}
