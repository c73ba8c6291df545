package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/managed"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/targets"
)

// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=managedmetrics,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=managedmetrics/status,verbs=get;patch;update

// ManagedMetricReconciler keeps ManagedMetrics current in both modes. It
// matches the metric's spec.target against the managed kinds its cluster
// serves (a managed.Watcher of that cluster) and reads each kind it may
// read into an aggregate of its own (a part). Event-driven, each part is a
// subscription to the shared watch of its kind; polling, each part is
// listed every spec.interval. When a managed kind appears or goes, the
// Watcher enqueues the cluster's ManagedMetrics and the kind's part is
// added or dropped; its watch starts or stops with its last subscriber,
// and its series go with it.
//
// Unlike Metric, one reconciler serves both modes: reconciles of one
// object never overlap, so a poll can never publish over the
// subscriptions of a metric that switched to events, or the reverse.
type ManagedMetricReconciler struct {
	ManagedReading
	Client client.Client
	// Lister lists the managed kinds of polling metrics of the local
	// cluster when Clusters is nil.
	Lister *targets.Lister
	// Kinds finds the managed kinds of the local cluster.
	Kinds *managed.Watcher
	// Clusters holds the connections to the clusters metrics read; nil:
	// only the local one. RemoteKinds finds the managed kinds of remote
	// clusters; it is required with Clusters.
	Clusters    *clusters.Set
	RemoteKinds *managed.Watchers
	// ClusterName is the cluster dimension of local objects.
	ClusterName string
	// Workers is how many metrics are reconciled at once (default 1): a
	// poll of a remote cluster holds its worker up to its deadline, and
	// one namespace's clusters may hold only some of the workers
	// (clusters.Set.Read), so the others need workers of their own.
	Workers int

	mu      sync.Mutex
	sources map[types.NamespacedName]*managedSource
}

// Reconcile matches one ManagedMetric to the managed kinds and keeps one
// subscription per kind it reads.
func (r *ManagedMetricReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	return settle(r.Startup, managedMetricKind, req.NamespacedName, res, err)
}

func (r *ManagedMetricReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := coordinator.Key{Kind: managedMetricKind, Namespace: req.Namespace, Name: req.Name}
	m := &v1alpha1.ManagedMetric{}
	if found, err := r.getOrRemove(ctx, r.Client, key, m, r.drop); !found {
		return ctrl.Result{}, err
	}
	if err := r.Access.CheckReferences(m.Namespace, access.ManagedMetricReferences(&m.Spec)...); err != nil {
		return r.fail(m, err, 0)
	}
	conn, err := r.clusterFor(m)
	if err != nil {
		// The cluster's connection tells when it changes; the recheck
		// covers an access created later.
		return r.fail(m, err, recheckInterval)
	}
	kinds := r.kindsOf(conn, key.String())
	if !kinds.Synced() {
		if err := kinds.Err(); err != nil {
			return r.fail(m, err, recheckInterval)
		}
		// The CRD watch has not listed yet; its sync enqueues the
		// cluster's ManagedMetrics.
		return ctrl.Result{RequeueAfter: time.Second}, errUnsettled
	}
	want, skipped, err := r.wanted(ctx, m, conn.Remote, kinds.Kinds())
	if errors.Is(err, access.ErrPending) {
		// The Checker sends the metric back once every kind's access is
		// decided; whatever it exports meanwhile stays as it is.
		return ctrl.Result{RequeueAfter: recheckInterval}, err
	}
	if err != nil {
		if !reason.Is(err) {
			return ctrl.Result{}, err
		}
		return r.fail(m, err, recheckInterval)
	}
	eventDriven := m.IsEventDriven(r.EventDrivenDefault)
	src, fresh, err := r.apply(m, conn, want, skipped, eventDriven)
	if err != nil {
		if !reason.Is(err) {
			return ctrl.Result{}, err
		}
		return r.fail(m, err, 0) // the spec must change first
	}
	if !eventDriven {
		return r.poll(ctx, m, conn, src, fresh)
	}
	return ctrl.Result{RequeueAfter: recheckInterval}, nil
}

// clusterFor returns the connection of the cluster a ManagedMetric reads,
// held until drop: the local one, or that of its remoteClusterAccessRef.
func (r *ManagedMetricReconciler) clusterFor(m *v1alpha1.ManagedMetric) (*clusters.Connection, error) {
	user := coordinator.Key{Kind: managedMetricKind, Namespace: m.Namespace, Name: m.Name}.String()
	return connectionFor(r.Clusters, user, m.Namespace, m.Spec.RemoteClusterAccessRef, r.Lister, r.ClusterName)
}

// kindsOf returns the managed kinds Watcher of conn's cluster, held for
// user until drop.
func (r *ManagedMetricReconciler) kindsOf(conn *clusters.Connection, user string) *managed.Watcher {
	if !conn.Remote {
		if r.RemoteKinds != nil {
			r.RemoteKinds.Release(user)
		}
		return r.Kinds
	}
	return r.RemoteKinds.Acquire(user, conn.Key, conn.Name, conn.Clients.Dynamic)
}

// wanted returns the kinds that spec.target selects and the metric may
// read. A kind it may not read is left out and named in skipped (a
// warning in the Ready condition), so that a tenant allowed some kinds of
// a group counts those; when it may read none of the selected kinds, the
// metric is Forbidden. A target naming a kind that no managed CRD defines
// is TargetNotFound; a target that selects nothing else is ready with no
// series, and picks up kinds installed later.
func (r *ManagedMetricReconciler) wanted(ctx context.Context, m *v1alpha1.ManagedMetric, remote bool, kinds []managed.Kind) (
	want []wantedKind, skipped string, err error) {
	name := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
	var denied []error
	pending := false
	parts := map[string]bool{}
	for _, w := range matchKinds(kinds, m.Spec.Target) {
		if remote {
			// A remote cluster's own RBAC decides what its identity may
			// read there, as for Metric.
			want = append(want, w)
			continue
		}
		part := partName(w.kind.GroupKind)
		parts[part] = true
		err := r.Access.Authorize(ctx, access.Request{Kind: managedMetricKind, Metric: name, Part: part,
			ServiceAccountName: m.Spec.ServiceAccountName, Resource: w.kind.GVR(w.version).GroupResource()})
		switch {
		case err == nil:
			want = append(want, w)
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
	case len(want) == 0 && len(denied) == 0 && m.Spec.Target != nil && m.Spec.Target.Kind != "":
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

// apply makes the metric's parts match want, in a new source when the
// generation, mode or cluster changed.
func (r *ManagedMetricReconciler) apply(m *v1alpha1.ManagedMetric, conn *clusters.Connection, want []wantedKind, skipped string,
	eventDriven bool) (src *managedSource, fresh bool, err error) {
	name := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
	mode := v1alpha1.ModeOf(eventDriven)
	r.mu.Lock()
	old := r.sources[name]
	r.mu.Unlock()
	src = old
	if old == nil || !old.keeps(m.Generation, m.CreationTimestamp.Time, mode, conn) {
		if _, err := r.Guard.CompileManagedMetric(m, schema.GroupKind{}); err != nil {
			return nil, false, err
		}
		key := coordinator.Key{Kind: managedMetricKind, Namespace: m.Namespace, Name: m.Name}
		src = newManagedSource(key.String(), conn, r.Guard.maxSeries(m.Spec.MaxSeries))
		src.update = managedUpdate(m, key, src, mode, r.DefaultSink)
		src.report = coordinatorReport{coord: r.Coordinator, src: src}
	}
	err = r.reader().apply(m, old, src, want, skipped, eventDriven, func(src *managedSource) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.sources == nil {
			r.sources = map[types.NamespacedName]*managedSource{}
		}
		r.sources[name] = src
	})
	return src, src != old, err
}

// managedUpdate describes a managed metric (of the coordinator's key) to
// the coordinator.
func managedUpdate(m *v1alpha1.ManagedMetric, key coordinator.Key, src coordinator.Source, mode v1alpha1.UpdateMode,
	defaultSink types.NamespacedName) coordinator.Update {
	return coordinator.Update{
		Key:            key,
		Generation:     m.Generation,
		Created:        m.CreationTimestamp.Time,
		Name:           m.MetricName(),
		Description:    m.Spec.Description,
		Interval:       managedInterval(m),
		Mode:           mode,
		Sink:           sinkRef(m.Namespace, m.Spec.DataSinkRef, defaultSink),
		DimensionNames: managedDimensionNames(m),
		Source:         src,
	}
}

// fail drops the metric's subscriptions and reports err.
func (r *ManagedMetricReconciler) fail(m *v1alpha1.ManagedMetric, err error, requeue time.Duration) (ctrl.Result, error) {
	return r.ManagedReading.fail(coordinator.Key{Kind: managedMetricKind, Namespace: m.Namespace, Name: m.Name},
		m.Generation, err, requeue, r.drop)
}

// drop removes all of a metric's subscriptions, stops the watches no
// other metric uses and lets go of its cluster.
func (r *ManagedMetricReconciler) drop(name types.NamespacedName) {
	r.mu.Lock()
	src := r.sources[name]
	delete(r.sources, name)
	r.mu.Unlock()
	r.reader().dropParts(src)
	user := coordinator.Key{Kind: managedMetricKind, Namespace: name.Namespace, Name: name.Name}.String()
	if r.RemoteKinds != nil {
		r.RemoteKinds.Release(user)
	}
	releaseConnection(r.Clusters, user)
}

// managedLog carries the lifecycle lines of ManagedMetrics' kinds, with
// the keys every component uses (metric; cluster, resource, namespace).
var managedLog = ctrl.Log.WithName("managedmetric")

// SetupWithManager registers the reconciler. Besides ManagedMetrics it
// watches the managed kinds: a kind that appears or goes enqueues the
// cluster's ManagedMetrics, and so do access decisions that flip and
// remote clusters' connections that change.
func (r *ManagedMetricReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ManagedMetric{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Named("managedmetric").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		WatchesRawSource(source.Channel(r.Kinds.Subscribe(), handler.EnqueueRequestsFromMapFunc(r.all)))
	if r.Access != nil {
		b = b.WatchesRawSource(r.Access.Source(managedMetricKind))
	}
	if r.Clusters != nil {
		b = b.WatchesRawSource(keySource(r.Clusters.Subscribe, r.ofCluster)).
			WatchesRawSource(keySource(r.RemoteKinds.Subscribe, r.ofCluster))
	}
	if r.Shard != nil {
		b = b.WatchesRawSource(shardSource(r.Shard, managedMetricKind, managedMetricKind, mgr.GetClient(), func() client.ObjectList { return &v1alpha1.ManagedMetricList{} }))
	}
	return b.Complete(r)
}

// all returns a request for every ManagedMetric.
func (r *ManagedMetricReconciler) all(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.list(ctx, func(*v1alpha1.ManagedMetric) bool { return true })
}

// ofCluster returns a request for every ManagedMetric reading the remote
// cluster key.
func (r *ManagedMetricReconciler) ofCluster(ctx context.Context, key string) []reconcile.Request {
	return r.list(ctx, func(m *v1alpha1.ManagedMetric) bool { return refersTo(key, m.Namespace, m.Spec.RemoteClusterAccessRef) })
}

func (r *ManagedMetricReconciler) list(ctx context.Context, match func(*v1alpha1.ManagedMetric) bool) []reconcile.Request {
	list := &v1alpha1.ManagedMetricList{}
	if err := r.Client.List(ctx, list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing ManagedMetrics after a change of their clusters failed")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if m := &list.Items[i]; match(m) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.Namespace, Name: m.Name}})
		}
	}
	return reqs
}
