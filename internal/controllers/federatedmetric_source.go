package controllers

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
)

// A FederatedMetric is a Metric on every cluster of its
// FederatedClusterAccess. Each cluster is one part (fedPart) with an
// Aggregate of its own: event-driven, a subscription to that cluster's
// shared watch of the target, which Metrics and other FederatedMetrics on
// it share too; polling, a LIST per interval. A federation.FanOut keeps
// the parts in step with the access's clusters and knows which clusters
// are active, failed or pending. fedSource renders the exported parts as
// one family, each under its own cluster dimension, so one cluster that
// fails never hides or holds up the others.

// fedPart is what a FederatedMetric reads of one cluster.
type fedPart struct {
	cluster federation.Cluster
	// id names the part among all subscriptions and as a user of the
	// cluster's connection.
	id  string
	cur atomic.Pointer[fedReading]
}

// fedReading is one registration of a part: replaced as a whole when the
// part starts afresh (a new connection, a limit retry).
type fedReading struct {
	agg *evaluation.Aggregate
	// sub is the subscription; nil in polling mode.
	sub  *registry.Subscription
	ik   registry.InformerKey
	gvk  schema.GroupVersionKind
	conn *clusters.Connection
}

func (p *fedPart) reading() *fedReading { return p.cur.Load() }

// fedSource is the coordinator Source of one FederatedMetric generation
// in one mode.
type fedSource struct {
	fan   *federation.FanOut[*fedPart]
	coord *coordinator.Coordinator
	// metric is the FederatedMetric as a Metric (asMetric), with the
	// target's kind as the API servers name it once one answered.
	metric    *v1alpha1.Metric
	eval      *evaluation.Evaluator
	maxSeries int
	access    string

	mu     sync.Mutex
	update coordinator.Update // Source is the fedSource itself

	limited atomic.Bool
	// broken is set when evaluating a poll panicked: the aggregates may
	// be inconsistent and are not evaluated again.
	broken atomic.Pointer[error]
}

var (
	_ coordinator.Source         = (*fedSource)(nil)
	_ coordinator.DegradedSource = (*fedSource)(nil)
)

func (s *fedSource) key() coordinator.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.update.Key
}

func (s *fedSource) currentUpdate() coordinator.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.update
}

// setKind records the target's kind as a cluster's API server names it
// (kind: pod is Pod), for the kind dimension, as Metric does.
func (s *fedSource) setKind(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.update.Base) == 3 && s.update.Base[2].Value != kind {
		base := slices.Clone(s.update.Base)
		base[2].Value = kind
		s.update.Base = base
	}
}

// Snapshot returns the series of every exported cluster.
func (s *fedSource) Snapshot() []coordinator.ClusterSeries {
	members := s.fan.Exported()
	out := make([]coordinator.ClusterSeries, 0, len(members))
	for _, m := range members {
		if r := m.Part.reading(); r != nil {
			out = append(out, coordinator.ClusterSeries{Cluster: m.Cluster.Name, Series: r.agg.Series()})
		}
	}
	return out
}

// Warning names objects without a value and clusters still pending.
func (s *fedSource) Warning() string {
	var n int
	var msg string
	for _, m := range s.fan.Exported() {
		if r := m.Part.reading(); r != nil {
			if c, last := r.agg.ObjectErrors(); c > 0 {
				n, msg = n+c, last
			}
		}
	}
	out := ""
	if n > 0 {
		out = fmt.Sprintf("%d objects have no value (%s)", n, msg)
	}
	c := s.fan.Counts()
	switch {
	case c.Active+c.Failed+c.Pending == 0:
		out = join(out, fmt.Sprintf("the FederatedClusterAccess %s discovers no clusters (yet)", s.access))
	case c.Pending > 0:
		out = join(out, fmt.Sprintf("%d clusters are not read yet", c.Pending))
	}
	return out
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Degraded makes the metric not Ready while some of its clusters cannot
// be read, or none has been read yet; the clusters read are exported.
func (s *fedSource) Degraded() error {
	if err := s.fan.Problem(); err != nil {
		return err
	}
	if c := s.fan.Counts(); c.Active == 0 && c.Pending > 0 {
		return reason.New(v1alpha1.ReasonPending, "waiting for the objects of %d clusters", c.Pending)
	}
	return nil
}

// evaluate tells the coordinator about the current series: an error when
// a limit is broken, a publish when publish is set (a cluster's state
// changed, or the set of clusters) or the metric comes back within its
// limits, else a change.
func (s *fedSource) evaluate(publish bool) {
	u := s.currentUpdate()
	if errp := s.broken.Load(); errp != nil {
		s.coord.SetError(u.Key, u.Generation, *errp)
		return
	}
	if err := s.limitErr(); err != nil {
		if !s.limited.Swap(true) || publish {
			s.coord.SetError(u.Key, u.Generation, err)
		}
		return
	}
	if s.limited.Swap(false) || publish {
		s.coord.Publish(u, true)
		return
	}
	s.coord.Changed(u.Key)
}

// limitErr returns why the metric is over its limits: a cluster's part
// over its own (which then holds nothing: a partial count would be
// wrong), or more series over all clusters than the metric may have.
func (s *fedSource) limitErr() error {
	total := 0
	for _, m := range s.fan.Exported() {
		r := m.Part.reading()
		if r == nil {
			continue
		}
		if err := r.agg.Err(); err != nil {
			return err
		}
		total += r.agg.SeriesLen()
	}
	if s.maxSeries > 0 && total > s.maxSeries {
		return reason.New(v1alpha1.ReasonSeriesLimitExceeded,
			"the metric has %d series over all clusters, more than %d, its limit (the lower of spec.maxSeries and the operator's --max-series-per-metric); "+
				"nothing is exported until it has fewer: group by fewer dimensions, or narrow the selectors", total, s.maxSeries)
	}
	return nil
}
