package controllers

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
)

// A ManagedMetric reads several managed kinds, each through the shared
// watch of its resource, which any Metric on that resource shares too.
// The registry and the event handler give every subscription one
// Aggregate, so the metric holds one subscription and one Aggregate per
// kind (a managedPart) and renders them as one family through
// managedSource. The alternative, one Aggregate fed by several watches,
// would need the event path to tell kinds apart inside an aggregate (UIDs
// are unique across kinds, but a relist of one kind replaces the whole
// aggregate) and would make a kind that goes away cost a walk over every
// object; with one Aggregate per kind, a kind going away is dropping its
// part.

// managedPart is what a ManagedMetric reads of one managed kind.
type managedPart struct {
	// id names the part among all subscriptions: the metric's key, the
	// kind's group and kind.
	id string
	// metric is the metric's key, for logs.
	metric string
	// gvk is the kind in the one version it is read in.
	gvk        schema.GroupVersionKind
	namespaced bool
	ik         registry.InformerKey
	// sub is the part's subscription; nil in polling mode.
	sub *registry.Subscription
	agg *evaluation.Aggregate

	mu sync.Mutex
	// forbidden is set while the operator itself may not read the kind:
	// the kind is left out (and named in the Ready message) rather than
	// withdrawing the kinds it may read.
	forbidden error
	// prefix names the kind in each of its series (group, version, kind)
	// when the metric uses the default dimensions; nil otherwise.
	prefix []evaluation.Dimension
}

// failure returns why the operator may not read the part's kind, or nil.
func (p *managedPart) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forbidden
}

func (p *managedPart) setFailure(err error) {
	p.mu.Lock()
	p.forbidden = err
	p.mu.Unlock()
}

// readable returns the parts whose kind the operator may read, and the
// first Forbidden error of the others.
func readable(parts []*managedPart) (ok []*managedPart, forbidden error) {
	ok = make([]*managedPart, 0, len(parts))
	for _, p := range parts {
		if err := p.failure(); err != nil {
			forbidden = cmp.Or(forbidden, err)
			continue
		}
		ok = append(ok, p)
	}
	return ok, forbidden
}

// managedSource is what one generation of a managed metric reads of one
// cluster: the series of all its parts, merged. For a ManagedMetric it is
// the coordinator Source; a FederatedManagedMetric has one per cluster.
// Readers (scrapes, pushes, status) load the parts without a lock; the
// reconciler replaces the whole slice.
type managedSource struct {
	// cluster is the "cluster" dimension of the series; clusterKey the
	// connection key of their watches.
	cluster, clusterKey string
	// remote is set for a cluster other than the local one: its own RBAC
	// decides what may be read there.
	remote bool
	// id prefixes the subscription IDs of the parts; unique per metric
	// and cluster.
	id string
	// maxSeries caps the merged series; 0: no cap. Each part's aggregate
	// is capped alike, which bounds memory; this caps what is exported.
	maxSeries int
	// update describes the metric; for a ManagedMetric its Source is this.
	update coordinator.Update
	// report hears whether the source can be exported.
	report managedReport

	parts   atomic.Pointer[[]*managedPart]
	skipped atomic.Pointer[string] // why some kinds are left out
	limited atomic.Bool
	// broken is set, in polling mode, when evaluating a list panicked:
	// the parts may be inconsistent and are not evaluated again.
	broken error
}

// newManagedSource returns an empty source of the cluster conn reaches,
// its parts named after id.
func newManagedSource(id string, conn *clusters.Connection, maxSeries int) *managedSource {
	return &managedSource{cluster: conn.Name, clusterKey: conn.Key, remote: conn.Remote, id: id, maxSeries: maxSeries}
}

// keeps reports whether the source still serves a metric of this
// generation, creation and mode reading conn: a new one starts every part
// afresh.
func (s *managedSource) keeps(generation int64, created time.Time, mode v1alpha1.UpdateMode, conn *clusters.Connection) bool {
	return s.update.Generation == generation && s.update.Created.Equal(created) && s.update.Mode == mode &&
		s.clusterKey == conn.Key && s.cluster == conn.Name
}

// managedReport hears what a managedSource's parts tell: the coordinator
// for a ManagedMetric, the federated source for one cluster of a
// FederatedManagedMetric.
type managedReport interface {
	// ready: every part holds its objects, for the first time or again
	// within the limits.
	ready()
	// changed: an event changed a series.
	changed()
	// failed: the source cannot be exported, for err.
	failed(err error)
}

// coordinatorReport reports a ManagedMetric's source to the coordinator.
type coordinatorReport struct {
	coord *coordinator.Coordinator
	src   *managedSource
}

func (c coordinatorReport) ready()   { c.coord.Publish(c.src.update, true) }
func (c coordinatorReport) changed() { c.coord.Changed(c.src.update.Key) }
func (c coordinatorReport) failed(err error) {
	c.coord.SetError(c.src.update.Key, c.src.update.Generation, err)
}

var _ coordinator.Source = (*managedSource)(nil)

func (s *managedSource) current() []*managedPart {
	if p := s.parts.Load(); p != nil {
		return *p
	}
	return nil
}

// Snapshot returns the merged series. With the default dimensions every
// series names its kind, so series of different kinds never merge; with
// spec.dimensions, objects of different kinds with equal dimension values
// are one series, whose value is their total.
func (s *managedSource) Snapshot() []coordinator.ClusterSeries {
	parts, _ := readable(s.current())
	var out []evaluation.Series
	var index map[string]int // merge key -> position in out
	for _, p := range parts {
		for _, se := range p.agg.Series() {
			if p.prefix != nil {
				dims := make([]evaluation.Dimension, 0, len(p.prefix)+len(se.Dimensions))
				dims = append(append(dims, p.prefix...), se.Dimensions...)
				out = append(out, evaluation.Series{Dimensions: dims, Value: se.Value})
				continue
			}
			if len(parts) == 1 {
				out = append(out, se)
				continue
			}
			if index == nil {
				index = map[string]int{}
			}
			k := seriesKey(se.Dimensions)
			if i, ok := index[k]; ok {
				out[i].Value += se.Value
				continue
			}
			index[k] = len(out)
			out = append(out, se)
		}
	}
	return []coordinator.ClusterSeries{{Cluster: s.cluster, Series: out}}
}

// seriesKey identifies a series by its dimensions; a dimension absent
// differs from one that is empty.
func seriesKey(dims []evaluation.Dimension) string {
	var b strings.Builder
	for _, d := range dims {
		b.WriteString(d.Name)
		b.WriteByte(0)
		b.WriteString(d.Value)
		b.WriteByte(0)
	}
	return b.String()
}

// Warning names the managed kinds left out because the metric's
// ServiceAccount or the operator itself may not read them.
func (s *managedSource) Warning() string {
	var out []string
	if p := s.skipped.Load(); p != nil && *p != "" {
		out = append(out, *p)
	}
	var names []string
	for _, p := range s.current() {
		if p.failure() != nil {
			names = append(names, p.ik.GVR.GroupResource().String())
		}
	}
	switch {
	case len(names) > 0 && s.remote:
		out = append(out, fmt.Sprintf("%d managed kinds left out because the remote cluster does not let the access's identity "+
			"list and watch them (grant it in the remote cluster's RBAC): %s", len(names), shortList(names)))
	case len(names) > 0:
		out = append(out, fmt.Sprintf("%d managed kinds left out because the operator may not list and watch them "+
			"(grant it with a ClusterRole labelled %s: \"true\"): %s", len(names), v1alpha1.AggregateToOperatorLabel, shortList(names)))
	}
	return strings.Join(out, "; ")
}

// shortList joins at most three names.
func shortList(names []string) string {
	s := strings.Join(names[:min(len(names), 3)], ", ")
	if len(names) > 3 {
		s += fmt.Sprintf(" and %d more", len(names)-3)
	}
	return s
}

// synced is every part's OnSynced: once all parts hold their objects the
// metric is published, never a partial count before.
func (s *managedSource) synced() { s.evaluate(true) }

// changed is every part's OnChange.
func (s *managedSource) changed() { s.evaluate(false) }

// evaluate reports the current series: an error when a limit is broken,
// ready when all parts are filled for the first time or come back within
// the limits, else a change.
func (s *managedSource) evaluate(publish bool) {
	all := s.current()
	parts, forbidden := readable(all)
	for _, p := range parts {
		if !p.sub.Synced() {
			return
		}
	}
	if len(parts) == 0 && forbidden != nil {
		s.report.failed(forbidden)
		return
	}
	if err := s.limitErr(parts); err != nil {
		if !s.limited.Swap(true) || publish {
			s.report.failed(err)
		}
		return
	}
	if s.limited.Swap(false) || publish {
		s.report.ready()
		return
	}
	s.report.changed()
}

// limitErr returns why the metric is over its limits: a part over its own
// (which then holds nothing), or more merged series than the cap. The
// merged series are only counted when the parts together hold more than
// the cap, which is rare.
func (s *managedSource) limitErr(parts []*managedPart) error {
	parts, _ = readable(parts)
	total := 0
	for _, p := range parts {
		if err := p.agg.Err(); err != nil {
			return err
		}
		total += p.agg.SeriesLen()
	}
	if s.maxSeries <= 0 || total <= s.maxSeries {
		return nil
	}
	if n := len(s.Snapshot()[0].Series); n > s.maxSeries {
		return reason.New(v1alpha1.ReasonSeriesLimitExceeded,
			"the metric has %d series over all managed kinds, more than %d, its limit (the lower of spec.maxSeries and the operator's --max-series-per-metric); "+
				"nothing is exported until it has fewer: group by fewer dimensions, or narrow spec.target or the selectors",
			n, s.maxSeries)
	}
	return nil
}

// sortParts orders parts by kind, so that a snapshot's order is stable.
func sortParts(parts []*managedPart) {
	slices.SortFunc(parts, func(a, b *managedPart) int {
		if c := strings.Compare(a.gvk.Group, b.gvk.Group); c != 0 {
			return c
		}
		return strings.Compare(a.gvk.Kind, b.gvk.Kind)
	})
}
