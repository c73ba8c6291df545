package controllers

import (
	"sync"
	"sync/atomic"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/federation"
)

// federatedManagedMetricKind is the coordinator's Key.Kind for
// FederatedManagedMetric objects.
const federatedManagedMetricKind = "FederatedManagedMetric"

// A FederatedManagedMetric is a ManagedMetric on every cluster of its
// FederatedClusterAccess. Each cluster is one part (fedManagedPart) that
// reads the cluster as a remote ManagedMetric reads its cluster: a
// managedSource with one part per managed kind, on the shared watches of
// the kinds (event-driven) or listed every interval (polling). The parts
// are held by the federated source's FanOut, as a FederatedMetric's are,
// so both kinds share one treatment of clusters that fail, recover, join
// or leave.

// fedManagedSource is the coordinator Source of one generation of a
// FederatedManagedMetric in one mode.
type fedManagedSource = federatedSource[*fedManagedPart]

// fedManagedPart is what a FederatedManagedMetric reads of one cluster.
type fedManagedPart struct {
	cluster federation.Cluster
	// user names the metric as a user of the cluster's connection and CRD
	// watch, and prefixes the IDs of its subscriptions (clusterUser); it
	// is the same for every generation of the metric.
	user string
	// cur reads the cluster; nil while its connection or managed kinds
	// are not known, or after it could not be connected.
	cur atomic.Pointer[managedSource]

	mu sync.Mutex
	// handed is what the previous generation of the metric read of the
	// cluster, until this one takes its subscriptions over (so a shared
	// watch that only this metric uses is not stopped and started again)
	// or drops it.
	handed *managedSource
}

// takeHanded returns the previous generation's source, once.
func (p *fedManagedPart) takeHanded() *managedSource {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.handed
	p.handed = nil
	return s
}

// series returns the cluster's series once the part reads it.
func (p *fedManagedPart) series() ([]evaluation.Series, bool) {
	src := p.cur.Load()
	if src == nil {
		return nil, false
	}
	return src.Snapshot()[0].Series, true
}

// warning names the managed kinds of the cluster left out.
func (p *fedManagedPart) warning() string {
	if src := p.cur.Load(); src != nil {
		return src.Warning()
	}
	return ""
}

// load returns how many series the kinds read hold, or the error of a
// kind's aggregate over its limits. Each kind's series name their kind
// (a FederatedManagedMetric has the default dimensions), so they never
// merge and the sum is the count exported.
func (p *fedManagedPart) load() (int, error) {
	src := p.cur.Load()
	if src == nil {
		return 0, nil
	}
	parts, _ := readable(src.current())
	total := 0
	for _, mp := range parts {
		if err := mp.agg.Err(); err != nil {
			return 0, err
		}
		total += mp.agg.SeriesLen()
	}
	return total, nil
}

// clusterReport hears one cluster's managedSource and turns what it
// tells into the cluster's state on the federated source. A source the
// cluster no longer reads through (replaced by a new generation, or
// dropped) is not heard.
type clusterReport struct {
	fed  *fedManagedSource
	part *fedManagedPart
	src  *managedSource
}

func (c clusterReport) current() bool { return c.part.cur.Load() == c.src }

func (c clusterReport) ready() {
	if c.current() {
		c.fed.synced(c.part.cluster.Key)
	}
}

func (c clusterReport) changed() {
	if c.current() {
		c.fed.evaluate(false)
	}
}

func (c clusterReport) failed(err error) {
	if c.current() {
		c.fed.failed(c.part.cluster.Key, err)
	}
}
