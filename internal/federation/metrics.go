package federation

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var clusterUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "metrics_operator_cluster_up",
	Help: "1 when the federated metrics reading a cluster last read it, 0 when they last found it unreachable; " +
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
// the cluster and those that find it unreachable. Several federated
// metrics read one cluster, some polling, so they learn of an outage or a
// recovery at different times: the latest one to learn has the last word.
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
	case to == up || to == noOpinion && h.down[cluster] == 0 && h.up[cluster] > 0:
		clusterUp.WithLabelValues(cluster).Set(1)
	case to == down || to == noOpinion && h.up[cluster] == 0 && h.down[cluster] > 0:
		clusterUp.WithLabelValues(cluster).Set(0)
	case h.up[cluster] > 0 || h.down[cluster] > 0:
		// Readers disagree and the one that changed says nothing: the
		// last word stands.
	default:
		delete(h.up, cluster)
		delete(h.down, cluster)
		clusterUp.DeleteLabelValues(cluster)
	}
}
