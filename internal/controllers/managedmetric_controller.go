package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/managed"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/targets"
)

// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=managedmetrics,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=managedmetrics/status,verbs=get;patch;update

// ManagedMetricReconciler keeps ManagedMetrics current in both modes. It
// matches the metric's spec.target against the managed kinds the cluster
// serves (a managed.Watcher) and reads each kind it may read into an
// aggregate of its own (a part). Event-driven, each part is a
// subscription to the shared watch of its kind; polling, each part is
// listed every spec.interval. When a managed kind appears or goes, the
// Watcher enqueues every ManagedMetric and the kind's part is added or
// dropped; its watch starts or stops with its last subscriber, and its
// series go with it.
//
// Unlike Metric, one reconciler serves both modes: reconciles of one
// object never overlap, so a poll can never publish over the
// subscriptions of a metric that switched to events, or the reverse.
type ManagedMetricReconciler struct {
	Client client.Client
	// Lister lists the managed kinds of polling metrics.
	Lister      *targets.Lister
	Registry    *registry.Registry
	Informers   *informers.Manager
	Coordinator *coordinator.Coordinator
	// Kinds finds the managed kinds of the local cluster.
	Kinds *managed.Watcher
	// ClusterName is the cluster dimension of local objects.
	ClusterName string
	// DefaultSink is the DataSink of metrics without dataSinkRef.
	DefaultSink types.NamespacedName
	// Guard refuses reserved names and bounds what a metric may hold.
	Guard Guard
	// EventDrivenDefault is the mode of metrics that choose none.
	EventDrivenDefault bool
	// Access authorizes each metric's reads and references; nil allows all.
	Access *access.Checker

	mu      sync.Mutex
	sources map[types.NamespacedName]*managedSource
}

// Reconcile matches one ManagedMetric to the managed kinds and keeps one
// subscription per kind it reads.
func (r *ManagedMetricReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := coordinator.Key{Kind: managedMetricKind, Namespace: req.Namespace, Name: req.Name}
	m := &v1alpha1.ManagedMetric{}
	if err := r.Client.Get(ctx, req.NamespacedName, m); err != nil {
		if apierrors.IsNotFound(err) {
			r.drop(req.NamespacedName)
			r.Access.Forget(managedMetricKind, req.NamespacedName)
			r.Coordinator.Remove(key)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if err := r.Access.CheckReferences(m.Namespace, access.ManagedMetricReferences(&m.Spec)...); err != nil {
		return r.fail(m, err, 0)
	}
	cluster, err := r.clusterFor(m)
	if err != nil {
		return r.fail(m, err, 0)
	}
	kinds := r.kindsOf(cluster)
	if !kinds.Synced() {
		if err := kinds.Err(); err != nil {
			return r.fail(m, err, recheckInterval)
		}
		// The CRD watch has not listed yet; its sync enqueues every
		// ManagedMetric.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	want, skipped, err := r.wanted(ctx, m, kinds.Kinds())
	if errors.Is(err, access.ErrPending) {
		// The Checker sends the metric back once every kind's access is
		// decided; whatever it exports meanwhile stays as it is.
		return ctrl.Result{RequeueAfter: recheckInterval}, nil
	}
	if err != nil {
		if !reason.Is(err) {
			return ctrl.Result{}, err
		}
		return r.fail(m, err, recheckInterval)
	}
	eventDriven := m.IsEventDriven(r.EventDrivenDefault)
	src, fresh, err := r.apply(m, cluster, want, skipped, eventDriven)
	if err != nil {
		if !reason.Is(err) {
			return ctrl.Result{}, err
		}
		return r.fail(m, err, 0) // the spec must change first
	}
	if !eventDriven {
		return r.poll(ctx, m, src, fresh)
	}
	return ctrl.Result{RequeueAfter: recheckInterval}, nil
}

// clusterFor returns the cluster a ManagedMetric reads: the local one.
// This is the one place that resolves spec.remoteClusterAccessRef.
func (r *ManagedMetricReconciler) clusterFor(m *v1alpha1.ManagedMetric) (string, error) {
	if m.Spec.RemoteClusterAccessRef != nil {
		return "", reason.New(v1alpha1.ReasonClusterUnreachable,
			"spec.remoteClusterAccessRef is not supported by this operator version yet; remove it to read the local cluster")
	}
	return r.ClusterName, nil
}

// kindsOf returns the managed kinds Watcher of a cluster that clusterFor
// returned.
func (r *ManagedMetricReconciler) kindsOf(string) *managed.Watcher { return r.Kinds }

// wantedKind is a managed kind a metric reads, in the version it reads.
type wantedKind struct {
	kind    managed.Kind
	version string
}

// wanted returns the kinds that spec.target selects and the metric may
// read. A kind it may not read is left out and named in skipped (a
// warning in the Ready condition), so that a tenant allowed some kinds of
// a group counts those; when it may read none of the selected kinds, the
// metric is Forbidden. A target naming a kind that no managed CRD defines
// is TargetNotFound; a target that selects nothing else is ready with no
// series, and picks up kinds installed later.
func (r *ManagedMetricReconciler) wanted(ctx context.Context, m *v1alpha1.ManagedMetric, kinds []managed.Kind) (
	want []wantedKind, skipped string, err error) {
	name := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
	var denied []error
	pending := false
	parts := map[string]bool{}
	for _, k := range kinds {
		v, ok := k.Match(m.Spec.Target)
		if !ok {
			continue
		}
		part := partName(k.GroupKind)
		parts[part] = true
		err := r.Access.Authorize(ctx, access.Request{Kind: managedMetricKind, Metric: name, Part: part,
			ServiceAccountName: m.Spec.ServiceAccountName, Resource: k.GVR(v).GroupResource()})
		switch {
		case err == nil:
			want = append(want, wantedKind{kind: k, version: v})
		case errors.Is(err, access.ErrPending):
			pending = true // every kind is asked for before the metric waits
		case reason.Is(err):
			denied = append(denied, err)
		default:
			return nil, "", err
		}
	}
	r.Access.ForgetParts(managedMetricKind, name, func(part string) bool { return !parts[part] })
	switch {
	case pending:
		return nil, "", access.ErrPending
	case len(want) == 0 && len(denied) > 0:
		msg := denied[0].Error()
		if len(denied) > 1 {
			msg += fmt.Sprintf(" (and %d more managed kinds selected by spec.target)", len(denied)-1)
		}
		return nil, "", reason.New(v1alpha1.ReasonForbidden, "%s", msg)
	case len(parts) == 0 && m.Spec.Target != nil && m.Spec.Target.Kind != "":
		return nil, "", reason.New(v1alpha1.ReasonTargetNotFound,
			"no managed resource kind (a CRD with the categories crossplane and managed) matches spec.target; "+
				"check its group, version and kind, or install the provider that serves it")
	case len(denied) > 0:
		skipped = fmt.Sprintf("%d selected managed kinds left out because this metric's ServiceAccount may not list and watch them cluster-wide: %s",
			len(denied), resourcesOf(denied))
	}
	return want, skipped, nil
}

// resourcesOf names at most three of the denied kinds; the Forbidden
// errors name the resource after "may not list " or "may not watch ".
func resourcesOf(denied []error) string {
	var names []string
	for _, err := range denied[:min(len(denied), 3)] {
		msg := err.Error()
		for _, verb := range []string{"may not list ", "may not watch "} {
			if i := strings.Index(msg, verb); i >= 0 {
				rest := msg[i+len(verb):]
				if j := strings.IndexByte(rest, ' '); j > 0 {
					names = append(names, rest[:j])
				}
				break
			}
		}
	}
	s := strings.Join(names, ", ")
	if len(denied) > 3 {
		s += fmt.Sprintf(" and %d more", len(denied)-3)
	}
	return s
}

// partName names one managed kind of a metric, in subscription IDs and
// access checks.
func partName(gk schema.GroupKind) string { return gk.Group + "/" + gk.Kind }

// apply makes the metric's parts match want: kinds it keeps keep their
// part and aggregate, new kinds get a new part (event-driven: subscribed,
// and the metric is published once all are filled), kinds no longer
// wanted are dropped. A new generation or mode starts every part afresh.
func (r *ManagedMetricReconciler) apply(m *v1alpha1.ManagedMetric, cluster string, want []wantedKind, skipped string,
	eventDriven bool) (src *managedSource, fresh bool, err error) {
	name := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
	mode := v1alpha1.ModeOf(eventDriven)
	r.mu.Lock()
	old := r.sources[name]
	r.mu.Unlock()
	src = old
	fresh = old == nil || old.update.Generation != m.Generation || !old.update.Created.Equal(m.CreationTimestamp.Time) ||
		old.cluster != cluster || old.update.Mode != mode
	if fresh {
		if _, err := r.Guard.CompileManagedMetric(m, schema.GroupKind{}); err != nil {
			return nil, false, err
		}
		src = &managedSource{cluster: cluster, maxSeries: r.Guard.maxSeries(m.Spec.MaxSeries), coord: r.Coordinator}
		src.update = r.managedUpdate(m, src, mode)
	}
	previous := map[string]*managedPart{}
	if old != nil {
		for _, p := range old.current() {
			previous[p.id] = p
		}
	}
	interval := managedInterval(m)
	var parts, started []*managedPart
	for _, w := range want {
		id, ik := partID(src.update.Key, w.kind.GroupKind), informerKey(cluster, w)
		if prev := previous[id]; prev != nil && !fresh && prev.ik == ik && !limitRetryDue(prev.agg, interval) {
			parts = append(parts, prev)
			delete(previous, id)
			continue
		}
		p, err := r.part(m, src, cluster, w, eventDriven)
		if err != nil {
			return nil, false, err
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
	r.mu.Lock()
	if r.sources == nil {
		r.sources = map[types.NamespacedName]*managedSource{}
	}
	r.sources[name] = src
	r.mu.Unlock()
	if !eventDriven {
		for _, p := range previous {
			r.dropPart(p)
		}
		return src, fresh, nil
	}

	for _, p := range started {
		if moved, ok := r.Registry.Register(p.ik, p.sub); ok {
			r.Informers.Release(moved)
		}
		if prev := previous[p.id]; prev != nil && prev.sub != nil {
			prev.agg.Close() // its subscription was replaced by Register
			delete(previous, p.id)
		}
	}
	for _, p := range previous {
		r.dropPart(p)
	}
	for _, p := range parts {
		if err := r.Informers.Ensure(p.ik, p.gvk, p.sub); err != nil {
			return nil, false, err
		}
	}
	for _, p := range started {
		managedLog.Info("Metric registered for events",
			append([]any{"metric", src.update.Key.String(), "metadataOnly", p.sub.MetadataOnly}, p.ik.LogValues()...)...)
	}
	if len(started) == 0 && (fresh || len(previous) > 0 || changedWarning) {
		src.evaluate(true)
	}
	return src, fresh, nil
}

// partID names a metric's part of one managed kind among all
// subscriptions: "ManagedMetric/<namespace>/<name>/<group>/<kind>".
func partID(key coordinator.Key, gk schema.GroupKind) string {
	return key.String() + "/" + partName(gk)
}

// informerKey is the shared watch of a managed kind. Managed resources are
// read in all namespaces: a ManagedMetric has no namespace scope, and most
// managed kinds are cluster-wide.
func informerKey(cluster string, w wantedKind) registry.InformerKey {
	return registry.InformerKey{Cluster: cluster, GVR: w.kind.GVR(w.version)}
}

// part builds the part of one managed kind, with its subscription when
// the metric is event-driven.
func (r *ManagedMetricReconciler) part(m *v1alpha1.ManagedMetric, src *managedSource, cluster string, w wantedKind,
	eventDriven bool) (*managedPart, error) {
	gk := w.kind.GroupKind
	e, err := r.Guard.CompileManagedMetric(m, gk)
	if err != nil {
		return nil, err
	}
	key, gen := src.update.Key, m.Generation
	p := &managedPart{
		id:         partID(key, gk),
		metric:     key.String(),
		namespaced: w.kind.Namespaced,
		gvk:        gk.WithVersion(w.version),
		ik:         informerKey(cluster, w),
		agg:        r.Guard.Aggregate(m.Namespace, e, m.Spec.MaxSeries),
	}
	if _, defaults := managedDimensions(m); defaults {
		p.prefix = []evaluation.Dimension{{Name: "group", Value: gk.Group}, {Name: "version", Value: w.version}, {Name: "kind", Value: gk.Kind}}
	}
	if !eventDriven {
		return p, nil
	}
	p.sub = &registry.Subscription{
		ID:           p.id,
		Generation:   gen,
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
				// The operator may not read this kind: the others go on,
				// and the Ready message names it until it may.
				p.setFailure(err)
				src.evaluate(true)
			default:
				r.Coordinator.SetError(key, gen, err)
			}
		},
	}
	return p, nil
}

func (r *ManagedMetricReconciler) managedUpdate(m *v1alpha1.ManagedMetric, src *managedSource, mode v1alpha1.UpdateMode) coordinator.Update {
	return coordinator.Update{
		Key:            coordinator.Key{Kind: managedMetricKind, Namespace: m.Namespace, Name: m.Name},
		Generation:     m.Generation,
		Created:        m.CreationTimestamp.Time,
		Name:           m.MetricName(),
		Description:    m.Spec.Description,
		Interval:       managedInterval(m),
		Mode:           mode,
		Sink:           sinkRef(m.Namespace, m.Spec.DataSinkRef, r.DefaultSink),
		DimensionNames: managedDimensionNames(m),
		Source:         src,
	}
}

// fail drops the metric's subscriptions and reports err.
func (r *ManagedMetricReconciler) fail(m *v1alpha1.ManagedMetric, err error, requeue time.Duration) (ctrl.Result, error) {
	r.drop(types.NamespacedName{Namespace: m.Namespace, Name: m.Name})
	r.Coordinator.SetError(coordinator.Key{Kind: managedMetricKind, Namespace: m.Namespace, Name: m.Name}, m.Generation, err)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// drop removes all of a metric's subscriptions and stops the watches no
// other metric uses.
func (r *ManagedMetricReconciler) drop(name types.NamespacedName) {
	r.mu.Lock()
	src := r.sources[name]
	delete(r.sources, name)
	r.mu.Unlock()
	if src == nil {
		return
	}
	for _, p := range src.current() {
		r.dropPart(p)
	}
}

func (r *ManagedMetricReconciler) dropPart(p *managedPart) {
	if p.sub == nil {
		p.agg.Close()
		return
	}
	if ik, ok := r.Registry.Unregister(p.sub.ID); ok {
		r.Informers.Release(ik)
		managedLog.Info("Metric dropped from events", append([]any{"metric", p.metric}, ik.LogValues()...)...)
	}
	p.agg.Close() // gives its series back to the budget
}

// managedLog carries the lifecycle lines of ManagedMetrics' kinds, with
// the keys every component uses (metric; cluster, resource, namespace).
var managedLog = ctrl.Log.WithName("managedmetric")

// SetupWithManager registers the reconciler. Besides ManagedMetrics it
// watches the managed kinds: a kind that appears or goes enqueues every
// ManagedMetric, and so do access decisions that flip.
func (r *ManagedMetricReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ManagedMetric{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Named("managedmetric").
		WatchesRawSource(source.Channel(r.Kinds.Subscribe(), handler.EnqueueRequestsFromMapFunc(r.all)))
	if r.Access != nil {
		b = b.WatchesRawSource(r.Access.Source(managedMetricKind))
	}
	return b.Complete(r)
}

// all returns a request for every ManagedMetric.
func (r *ManagedMetricReconciler) all(ctx context.Context, _ client.Object) []reconcile.Request {
	list := &v1alpha1.ManagedMetricList{}
	if err := r.Client.List(ctx, list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing ManagedMetrics after a change of managed kinds failed")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, m := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.Namespace, Name: m.Name}})
	}
	return reqs
}
