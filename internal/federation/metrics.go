package federation

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var clusterUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "metrics_operator_cluster_up",
	Help: "1 while the federated metrics reading a cluster read it, 0 while none does and it cannot be reached; " +
		"by cluster name (the series' cluster dimension). Absent while no federated metric has read or tried to read it.",
}, []string{"cluster"})

func init() {
	metrics.Registry.MustRegister(clusterUp)
}

// opinion is what one FanOut member says about its cluster's health.
type opinion int

const (
	noOpinion opinion = iota
	up
	down
)

// health counts, per cluster name, the members of all FanOuts that read
// the cluster and those that find it unreachable: several federated
// metrics read one cluster, and it is up while any of them reads it.
type health struct {
	mu   sync.Mutex
	up   map[string]int
	down map[string]int
}

var clusterHealth = &health{up: map[string]int{}, down: map[string]int{}}

// move records that a member's opinion on cluster changed.
func (h *health) move(cluster string, from, to opinion) {
	if from == to {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for o, d := range map[opinion]int{from: -1, to: 1} {
		switch o {
		case up:
			h.up[cluster] += d
		case down:
			h.down[cluster] += d
		}
	}
	switch {
	case h.up[cluster] > 0:
		clusterUp.WithLabelValues(cluster).Set(1)
	case h.down[cluster] > 0:
		clusterUp.WithLabelValues(cluster).Set(0)
	default:
		delete(h.up, cluster)
		delete(h.down, cluster)
		clusterUp.DeleteLabelValues(cluster)
	}
}
