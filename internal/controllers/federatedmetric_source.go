package controllers

import (
	"fmt"
	"slices"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/registry"
)

// A FederatedMetric is a Metric on every cluster of its
// FederatedClusterAccess. Each cluster is one part (fedPart) with an
// Aggregate of its own: event-driven, a subscription to that cluster's
// shared watch of the target, which Metrics and other FederatedMetrics on
// it share too; polling, a LIST per interval. A federation.FanOut keeps
// the parts in step with the access's clusters and knows which clusters
// are active, failed or pending. fedSource, a federatedSource, renders
// the exported parts as one family, each under its own cluster
// dimension, so one cluster that fails never hides or holds up the
// others.

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

// series returns the cluster's series, once the part has a reading.
func (p *fedPart) series() ([]evaluation.Series, bool) {
	if r := p.reading(); r != nil {
		return r.agg.Series(), true
	}
	return nil, false
}

// warning names the cluster's objects without a value.
func (p *fedPart) warning() string {
	if r := p.reading(); r != nil {
		if n, msg := r.agg.ObjectErrors(); n > 0 {
			return fmt.Sprintf("%d objects have no value (%s)", n, msg)
		}
	}
	return ""
}

// load returns how many series the part holds, or the error of its
// aggregate over its limits.
func (p *fedPart) load() (int, error) {
	r := p.reading()
	if r == nil {
		return 0, nil
	}
	if err := r.agg.Err(); err != nil {
		return 0, err
	}
	return r.agg.SeriesLen(), nil
}

// fedSource is the coordinator Source of one FederatedMetric generation
// in one mode: the federated source of its parts, and the Metric it
// evaluates on each cluster.
type fedSource struct {
	*federatedSource[*fedPart]
	// metric is the FederatedMetric as a Metric (asMetric), with the
	// target's kind as the API servers name it once one answered.
	metric *v1alpha1.Metric
	eval   *evaluation.Evaluator
}

var (
	_ coordinator.Source         = (*fedSource)(nil)
	_ coordinator.DegradedSource = (*fedSource)(nil)
)

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
