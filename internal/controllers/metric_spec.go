package controllers

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/evaluation"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// baseNames are the dimensions every series carries besides projections.
var baseNames = []string{"group", "version", "kind", "cluster"}

// NameChecker refuses exported names that clash with the families the
// operator serves itself on /metrics; *prometheus.Collector is one.
type NameChecker interface {
	CheckName(name string) error
}

// Guard holds what every metric is checked against beside its own spec,
// so that one tenant's metric cannot harm the operator or the others.
// Both update modes use the same Guard.
type Guard struct {
	// Names refuses reserved exported names; nil accepts every name.
	Names NameChecker
	// Limits bound the series and dimension values of every metric; a
	// metric's spec.maxSeries may lower Limits.MaxSeries.
	Limits evaluation.Limits
	// Budgets, when set, give each namespace's metrics their series
	// budget (in place of Limits.Budget).
	Budgets *evaluation.Budgets
}

// Aggregate returns an empty aggregate for e of a metric in namespace,
// within the operator's limits lowered by the metric's spec.maxSeries,
// and within the namespace's series budget.
func (g Guard) Aggregate(namespace string, e *evaluation.Evaluator, maxSeries *int32) *evaluation.Aggregate {
	limits := g.Limits
	if maxSeries != nil {
		limits = limits.Lower(int(*maxSeries))
	}
	if g.Budgets != nil {
		limits.Budget = g.Budgets.For(namespace)
	}
	return evaluation.NewLimitedAggregate(e, limits)
}

// limitReporter tells the coordinator about an event-driven metric whose
// aggregate goes over its limits or comes back within them: over them the
// metric is in error (and withdrawn), back within them it is published
// anew, since Changed alone does not clear an error.
type limitReporter struct {
	coordinator *coordinator.Coordinator
	update      coordinator.Update
	agg         *evaluation.Aggregate
	limited     atomic.Bool
	// tracker reports changes without a lookup of the metric per event.
	tracker *coordinator.Tracker
}

// synced is the subscription's OnSynced.
func (l *limitReporter) synced() {
	if err := l.agg.Err(); err != nil {
		l.limited.Store(true)
		l.coordinator.SetError(l.update.Key, l.update.Generation, err)
		return
	}
	l.limited.Store(false)
	l.coordinator.Publish(l.update, true)
}

// changed is the subscription's OnChange.
func (l *limitReporter) changed() {
	if err := l.agg.Err(); err != nil {
		if !l.limited.Swap(true) {
			l.coordinator.SetError(l.update.Key, l.update.Generation, err)
		}
		return
	}
	// Load first: the event path calls this for every metric it changes,
	// and a Swap would write the flag's cache line each time.
	if l.limited.Load() && l.limited.Swap(false) {
		l.coordinator.Publish(l.update, true)
		return
	}
	l.tracker.Changed()
}

// limitRetryDue reports whether an aggregate over its limits has been so
// for a whole interval: an event-driven metric then reads its objects
// again (polling metrics do at every poll anyway).
func limitRetryDue(agg *evaluation.Aggregate, interval time.Duration) bool {
	since, limited := agg.LimitedSince()
	return limited && time.Since(since) >= interval
}

// CompileMetric compiles a Metric's spec for the evaluation engine; both
// update modes use it, so both produce the same series.
func (g Guard) CompileMetric(m *v1alpha1.Metric) (*evaluation.Evaluator, error) {
	if err := checkProjectionNames(m.Spec.Projections, "spec.projections"); err != nil {
		return nil, err
	}
	if g.Names != nil {
		if err := g.Names.CheckName(m.MetricName()); err != nil {
			return nil, err
		}
	}
	return evaluation.Compile(evaluation.Spec{
		Namespace:     m.Spec.Namespace,
		LabelSelector: m.Spec.LabelSelector,
		FieldSelector: m.Spec.FieldSelector,
		Projections:   m.Spec.Projections,
		ValueFrom:     m.Spec.ValueFrom,
		Target:        m.Spec.Target.GVK().GroupKind(),
	})
}

// checkProjectionNames rejects projections whose Prometheus label would
// clash with a base dimension or with another projection.
func checkProjectionNames(ps []v1alpha1.Projection, field string) error {
	seen := map[string]string{}
	for _, b := range baseNames {
		seen[b] = "the base dimension " + b
	}
	for i, p := range ps {
		label := promexport.SanitizeLabel(p.Name)
		if strings.HasPrefix(label, "__") {
			return &evaluation.CompileError{
				Reason:  v1alpha1.ReasonInvalidProjection,
				Field:   fmt.Sprintf("%s[%d].name", field, i),
				Message: fmt.Sprintf("projection %q becomes label %q; names starting with \"__\" are reserved by Prometheus, choose another name", p.Name, label),
			}
		}
		if other, dup := seen[label]; dup {
			return &evaluation.CompileError{
				Reason: v1alpha1.ReasonInvalidProjection,
				Field:  fmt.Sprintf("%s[%d].name", field, i),
				Message: fmt.Sprintf("projection %q becomes label %q, which %s already uses; choose another name",
					p.Name, label, other),
			}
		}
		seen[label] = fmt.Sprintf("projection %q", p.Name)
	}
	return nil
}

func baseDimensions(t v1alpha1.GroupVersionKind) []evaluation.Dimension {
	return []evaluation.Dimension{{Name: "group", Value: t.Group}, {Name: "version", Value: t.Version}, {Name: "kind", Value: t.Kind}}
}

func sinkRef(namespace string, ref *v1alpha1.DataSinkReference, def types.NamespacedName) coordinator.SinkRef {
	if ref != nil {
		return coordinator.SinkRef{NamespacedName: types.NamespacedName{Namespace: namespace, Name: ref.Name}, Explicit: true}
	}
	return coordinator.SinkRef{NamespacedName: def}
}

// intervalOf returns spec.interval, or its schema default for objects
// written before the default existed.
func intervalOf(m *v1alpha1.Metric) time.Duration {
	if d := m.Spec.Interval.Duration; d > 0 {
		return d
	}
	return 10 * time.Minute
}

// metricUpdate describes a Metric to the coordinator; both update modes
// use it, so a metric switching modes keeps its key, family and labels.
func metricUpdate(m *v1alpha1.Metric, mode v1alpha1.UpdateMode, interval time.Duration, defaultSink types.NamespacedName,
	src coordinator.Source, e *evaluation.Evaluator) coordinator.Update {
	return coordinator.Update{
		Key:            coordinator.Key{Kind: metricKind, Namespace: m.Namespace, Name: m.Name},
		Generation:     m.Generation,
		Created:        m.CreationTimestamp.Time,
		Name:           m.MetricName(),
		Description:    m.Spec.Description,
		Interval:       interval,
		Mode:           mode,
		Sink:           sinkRef(m.Namespace, m.Spec.DataSinkRef, defaultSink),
		Base:           baseDimensions(m.Spec.Target),
		DimensionNames: e.DimensionNames(),
		Source:         src,
	}
}
