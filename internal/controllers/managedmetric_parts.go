package controllers

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/managed"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/startup"
	"github.com/SAP/metrics-operator/internal/targets"
)

// ManagedReading is what the ManagedMetric and FederatedManagedMetric
// reconcilers share to turn managed kinds into exported series.
type ManagedReading struct {
	Registry    *registry.Registry
	Informers   *informers.Manager
	Coordinator *coordinator.Coordinator
	// DefaultSink is the DataSink of metrics without dataSinkRef.
	DefaultSink types.NamespacedName
	// Guard refuses reserved names and bounds what a metric may hold.
	Guard Guard
	// EventDrivenDefault is the mode of metrics that choose none.
	EventDrivenDefault bool
	// Access authorizes each metric's reads of the local cluster and its
	// references; nil allows all.
	Access *access.Checker
	// Startup is told when a metric is settled (registered, or nothing to
	// register); nil: nobody waits.
	Startup *startup.Gate
	// Shard, if set, is this replica's share of the metrics.
	Shard Shard
}

// getOrRemove reads the metric key names into obj. When it is gone, or
// another replica serves it (Shard), drop
// lets go of what the reconciler holds for it, its access decisions are
// forgotten and its family removed, and found is false; err is
// errUnsettled when this replica will serve it once its view settles.
func (r ManagedReading) getOrRemove(ctx context.Context, c client.Client, key coordinator.Key, obj client.Object,
	drop func(types.NamespacedName)) (found bool, err error) {
	name := types.NamespacedName{Namespace: key.Namespace, Name: key.Name}
	served := serves(r.Shard, key.Kind, key)
	if served {
		err := c.Get(ctx, name, obj)
		if err == nil {
			return true, nil
		}
		if !apierrors.IsNotFound(err) {
			return false, err
		}
	}
	drop(name)
	r.Access.Forget(key.Kind, name)
	r.Coordinator.Remove(key)
	released(r.Shard, key.Kind, key)
	if !served {
		return false, notServedYet(r.Shard, key)
	}
	return false, nil
}

// fail lets go of what the reconciler holds for the metric (drop) and
// reports err for its generation.
func (r ManagedReading) fail(key coordinator.Key, generation int64, err error, requeue time.Duration,
	drop func(types.NamespacedName)) (ctrl.Result, error) {
	drop(types.NamespacedName{Namespace: key.Namespace, Name: key.Name})
	r.Coordinator.SetError(key, generation, err)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

func (r ManagedReading) reader() managedReader {
	return managedReader{registry: r.Registry, informers: r.Informers, guard: r.Guard}
}

// managedReader reads the managed kinds of one cluster into a
// managedSource, in either mode: what a ManagedMetric does for its
// cluster, and a FederatedManagedMetric for each of its clusters.
type managedReader struct {
	registry  *registry.Registry
	informers *informers.Manager
	guard     Guard
}

// wantedKind is a managed kind a metric reads, in the version it reads.
type wantedKind struct {
	kind    managed.Kind
	version string
}

// apply makes src's parts match want. src is either old, kept for this
// generation, or a new source replacing old: kinds it keeps keep their
// part and aggregate, new kinds get a new part (event-driven: subscribed,
// and the source is ready once all are filled), kinds no longer wanted
// are dropped, and a new source starts every part afresh. install records
// src as the cluster's source before any part is registered, so that
// whatever a part reports finds it.
func (r managedReader) apply(m *v1alpha1.ManagedMetric, old, src *managedSource, want []wantedKind, skipped string,
	eventDriven bool, install func(*managedSource)) error {
	fresh := src != old
	previous := map[string]*managedPart{}
	if old != nil {
		for _, p := range old.current() {
			previous[p.id] = p
		}
	}
	interval := managedInterval(m)
	var parts, started []*managedPart
	for _, w := range want {
		id, ik := src.partID(w.kind.GroupKind), informerKey(src.clusterKey, w)
		if prev := previous[id]; prev != nil && !fresh && prev.ik == ik && !limitRetryDue(prev.agg, interval) {
			parts = append(parts, prev)
			delete(previous, id)
			continue
		}
		p, err := r.part(m, src, w, eventDriven)
		if err != nil {
			return err
		}
		parts = append(parts, p)
		started = append(started, p)
	}
	sortParts(parts)
	// The parts are in place before any is registered: the first part
	// filled must see the others unfilled and wait for them.
	src.parts.Store(&parts)
	changedWarning := src.Warning() != skipped
	src.skipped.Store(&skipped)
	install(src)
	if !eventDriven {
		for _, p := range previous {
			r.dropPart(p)
		}
		return nil
	}

	for _, p := range started {
		if moved, ok := r.registry.Register(p.ik, p.sub); ok {
			r.informers.Release(moved)
		}
		if prev := previous[p.id]; prev != nil && prev.sub != nil {
			prev.agg.Close() // its subscription was replaced by Register
			delete(previous, p.id)
		}
		// Logged before Ensure, which the watch's own lines follow.
		managedLog.Info("Metric registered for events",
			append([]any{"metric", p.metric, "metadataOnly", p.sub.MetadataOnly}, p.ik.LogValues()...)...)
	}
	for _, p := range previous {
		r.dropPart(p)
	}
	for _, p := range parts {
		if err := r.informers.Ensure(p.ik, p.gvk, p.sub); err != nil {
			return err
		}
	}
	if len(started) == 0 && (fresh || len(previous) > 0 || changedWarning) {
		src.evaluate(true)
	}
	return nil
}

// partID names the source's part of one managed kind among all
// subscriptions: "<source id>/<group>/<kind>".
func (s *managedSource) partID(gk schema.GroupKind) string { return s.id + "/" + partName(gk) }

// informerKey is the shared watch of a managed kind. Managed resources are
// read in all namespaces: a managed metric has no namespace scope, and
// most managed kinds are cluster-wide.
func informerKey(cluster string, w wantedKind) registry.InformerKey {
	return registry.InformerKey{Cluster: cluster, GVR: w.kind.GVR(w.version)}
}

// part builds the part of one managed kind, with its subscription when
// the metric is event-driven.
func (r managedReader) part(m *v1alpha1.ManagedMetric, src *managedSource, w wantedKind, eventDriven bool) (*managedPart, error) {
	gk := w.kind.GroupKind
	e, err := r.guard.CompileManagedMetric(m, gk)
	if err != nil {
		return nil, err
	}
	p := &managedPart{
		id:         src.partID(gk),
		metric:     src.update.Key.String(),
		namespaced: w.kind.Namespaced,
		gvk:        gk.WithVersion(w.version),
		ik:         informerKey(src.clusterKey, w),
		agg:        r.guard.Aggregate(m.Namespace, e, m.Spec.MaxSeries),
	}
	if _, defaults := managedDimensions(m); defaults {
		p.prefix = []evaluation.Dimension{{Name: "group", Value: gk.Group}, {Name: "version", Value: w.version}, {Name: "kind", Value: gk.Kind}}
	}
	if !eventDriven {
		return p, nil
	}
	p.sub = &registry.Subscription{
		ID:           p.id,
		Generation:   m.Generation,
		Aggregate:    p.agg,
		MetadataOnly: e.MetadataOnly(),
		OnSynced: func() {
			p.setFailure(nil)
			src.synced()
		},
		OnChange: src.changed,
		OnError: func(err error) {
			switch reason.Of(err, "") {
			case v1alpha1.ReasonTargetNotFound:
				// The kind's CRD went away: the Watcher enqueues the
				// metric, which drops the kind; the other kinds go on.
			case v1alpha1.ReasonForbidden:
				// The kind may not be read: the others go on, and the
				// Ready message names it until it may.
				p.setFailure(err)
				src.evaluate(true)
			default:
				src.report.failed(err)
			}
		},
	}
	return p, nil
}

// dropParts drops every part of src.
func (r managedReader) dropParts(src *managedSource) {
	if src == nil {
		return
	}
	for _, p := range src.current() {
		r.dropPart(p)
	}
}

// dropPart removes a part's subscription and stops its watch if no other
// metric uses it.
func (r managedReader) dropPart(p *managedPart) {
	if p.sub == nil {
		p.agg.Close()
		return
	}
	if ik, ok := r.registry.Unregister(p.sub.ID); ok {
		// Logged before Release, which may stop the watch and log it.
		managedLog.Info("Metric dropped from events", append([]any{"metric", p.metric}, ik.LogValues()...)...)
		r.informers.Release(ik)
	}
	p.agg.Close() // gives its series back to the budget
}

// poll reads every part of a polling source once through conn's lister.
// It returns whether a series changed, or the error that keeps the source
// from being exported with how soon to try again (0: not before the spec
// changes); clusters.ErrBusy when conn's cluster had its share of reads
// in flight. A remote cluster is read within pollDeadline and through
// its gate (boundedRead); the parts' aggregates are changed only after
// the reads returned. The event-driven path and this one share the parts,
// the aggregates and the source, so both modes give the same series.
func (r managedReader) poll(ctx context.Context, src *managedSource, set *clusters.Set, conn *clusters.Connection,
	labelSelector string, interval time.Duration) (changed bool, retry time.Duration, err error) {
	if src.broken != nil {
		return false, 0, src.broken
	}
	key := src.update.Key
	parts := src.current()
	var reads []partRead
	err = boundedRead(ctx, set, conn, pollDeadline(interval), func(ctx context.Context) error {
		out, err := listParts(ctx, conn.Lister, parts, labelSelector)
		reads = out
		return err
	})
	if errors.Is(err, clusters.ErrBusy) {
		return false, busyRetry(), err
	}
	if err != nil {
		return false, min(interval, notFoundRetry), err
	}
	for i, p := range parts {
		read := reads[i]
		switch reason.Of(read.err, "") {
		case v1alpha1.ReasonTargetNotFound:
			// The kind's CRD went away: the Watcher enqueues the metric,
			// which drops the kind; the other kinds go on.
			continue
		case v1alpha1.ReasonForbidden:
			// The kind may not be read: the others go on, and the Ready
			// message names it until it may.
			changed = changed || p.failure() == nil
			p.setFailure(read.err)
			continue
		}
		changed = changed || p.failure() != nil
		p.setFailure(nil)
		c, err := replaceAll(key.String(), p.agg, read.objs)
		if err != nil {
			src.broken = err
			return false, 0, err
		}
		ctrl.LoggerFrom(ctx).V(1).Info("Metric polled", append([]any{"metric", key.String(),
			"objects", len(read.objs), "changed", c, "duration", read.took.String()}, p.ik.LogValues()...)...)
		changed = changed || c
	}
	if parts, forbidden := readable(src.current()); len(parts) == 0 && forbidden != nil {
		return false, min(interval, notFoundRetry), forbidden
	}
	if err := src.limitErr(src.current()); err != nil {
		// Over its limits: the next poll tries again from scratch.
		return false, interval, err
	}
	return changed, interval, nil
}

// partRead is what a poll listed of one part.
type partRead struct {
	objs []map[string]any
	// err is the part's own failure (its kind not served or forbidden).
	err  error
	took time.Duration
}

// listParts lists every part through lister. A part's kind that is not
// served or may not be read is that part's failure; any other error is
// the cluster's, returned at once.
func listParts(ctx context.Context, lister *targets.Lister, parts []*managedPart, labelSelector string) ([]partRead, error) {
	out := make([]partRead, len(parts))
	for i, p := range parts {
		start := time.Now()
		objs, err := lister.List(ctx, p.mapping(), "", labelSelector)
		switch reason.Of(err, "") {
		case v1alpha1.ReasonTargetNotFound, v1alpha1.ReasonForbidden:
		default:
			if err != nil {
				return nil, err
			}
		}
		out[i] = partRead{objs: objs, err: err, took: time.Since(start)}
	}
	return out, nil
}

// replaceAll evaluates a poll's objects into agg, which keeps only the
// series between polls (Aggregate.Poll); a panic in evaluation is
// returned as the metric's error.
func replaceAll(id string, agg *evaluation.Aggregate, objs []map[string]any) (changed bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			changed, err = false, events.PanicError(id, "poll", p)
		}
	}()
	return agg.Poll(objs), nil
}

// mapping is how the Lister reads the part: its resource in the one
// version the metric reads, in all namespaces.
func (p *managedPart) mapping() *meta.RESTMapping {
	scope := meta.RESTScopeRoot
	if p.namespaced {
		scope = meta.RESTScopeNamespace
	}
	return &meta.RESTMapping{Resource: p.ik.GVR, GroupVersionKind: p.gvk, Scope: scope}
}

// matchKinds returns the kinds target selects (nil: all), each in the
// version it is read in.
func matchKinds(kinds []managed.Kind, target *v1alpha1.ManagedTarget) []wantedKind {
	var out []wantedKind
	for _, k := range kinds {
		if v, ok := k.Match(target); ok {
			out = append(out, wantedKind{kind: k, version: v})
		}
	}
	return out
}
