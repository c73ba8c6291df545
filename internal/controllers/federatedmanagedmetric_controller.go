package controllers

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/managed"
	"github.com/SAP/metrics-operator/internal/reason"
)

// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=federatedmanagedmetrics,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=federatedmanagedmetrics/status,verbs=get;patch;update

// FederatedManagedMetricReconciler keeps FederatedManagedMetrics current
// in both modes: a ManagedMetric without target or dimensions on every
// cluster its FederatedClusterAccess discovers (federation.Members), one
// part per cluster (see fedManagedPart). Each cluster is read as a remote
// ManagedMetric reads its cluster (its connection, its CRD watch, one
// subscription per managed kind on the shared watch of the kind), and the
// clusters' series are exported as one family with the cluster
// dimension. A cluster that joins is read from then on, one that leaves
// takes its parts, watches and series along; one that becomes
// unreachable keeps its last series for the grace period, as a
// FederatedMetric's does.
type FederatedManagedMetricReconciler struct {
	// ManagedReading's Access refuses references into other namespaces;
	// the clusters' own RBAC decides what may be read there.
	ManagedReading
	Client   client.Client
	Clusters *clusters.Set
	// Kinds finds the managed kinds of the clusters.
	Kinds *managed.Watchers
	// Members holds the clusters of each FederatedClusterAccess.
	Members *federation.Members
	// GracePeriod is how long an unreachable cluster's series stay
	// exported (zero: DefaultClusterGracePeriod).
	GracePeriod time.Duration
	// Workers is how many metrics are reconciled at once (default 1): a
	// poll waits for its slowest cluster, up to pollTimeout.
	Workers int

	mu      sync.Mutex
	sources map[types.NamespacedName]*fedManagedSource
}

// Reconcile reads one FederatedManagedMetric's clusters.
func (r *FederatedManagedMetricReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	return settle(r.Startup, federatedManagedMetricKind, req.NamespacedName, res, err)
}

func (r *FederatedManagedMetricReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := coordinator.Key{Kind: federatedManagedMetricKind, Namespace: req.Namespace, Name: req.Name}
	f := &v1alpha1.FederatedManagedMetric{}
	if found, err := r.getOrRemove(ctx, r.Client, key, f, r.drop); !found {
		return ctrl.Result{}, err
	}
	if err := r.Access.CheckReferences(f.Namespace, access.FederatedManagedMetricReferences(&f.Spec)...); err != nil {
		return r.fail(f, err, 0)
	}
	ref := f.Spec.FederateClusterAccessRef
	accessName := types.NamespacedName{Namespace: cmp.Or(ref.Namespace, f.Namespace), Name: ref.Name}
	fca := &v1alpha1.FederatedClusterAccess{}
	if err := r.Client.Get(ctx, accessName, fca); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// The access's creation enqueues the metric.
		return r.fail(f, reason.New(v1alpha1.ReasonClusterUnreachable,
			"the FederatedClusterAccess %s does not exist (yet): create it, or fix spec.federateClusterAccessRef", accessName), 0)
	}
	m := asManagedMetric(f)
	eventDriven := f.IsEventDriven(r.EventDrivenDefault)
	fed, handed, err := r.source(m, accessName, eventDriven)
	if err != nil {
		return r.fail(f, err, 0) // the spec must change first
	}
	fresh := handed != nil
	changed := fed.fan.Sync(r.Members.Clusters(accessName), r.newPart(fed, handed), r.stopPart)
	// What the previous generation read of clusters that left meanwhile.
	for cluster, s := range handed {
		r.reader().dropParts(s)
		r.release(key, cluster)
	}
	notReady := map[string]string{}
	for _, dc := range fca.Status.Clusters {
		if !dc.Ready {
			notReady[dc.ClusterName] = dc.Reason
		}
	}
	if !eventDriven {
		next := managedInterval(m)
		if pollClusters(ctx, fed, next, func(ctx context.Context, mb federation.Member[*fedManagedPart]) (bool, bool) {
			return r.readCluster(ctx, m, fed, mb, notReady[mb.Cluster.Name], false)
		}) {
			next = busyRetry() // a cluster had its share of reads in flight
		}
		return r.settled(fed, next)
	}
	for _, mb := range fed.fan.Members() {
		// Event-driven reads only register with the shared watches: no
		// request to the cluster is made here.
		if state, _ := r.readCluster(ctx, m, fed, mb, notReady[mb.Cluster.Name], true); state {
			changed = true
		}
	}
	if changed || fresh {
		fed.evaluate(true)
	}
	return r.settled(fed, recheckInterval)
}

// settled returns when to read the metric again: soon while a cluster's
// CRD watch has not listed yet, so that the start gate waits for it.
func (r *FederatedManagedMetricReconciler) settled(fed *fedManagedSource, next time.Duration) (ctrl.Result, error) {
	if fed.fan.Counts().Pending > 0 {
		return ctrl.Result{RequeueAfter: time.Second}, errUnsettled
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// source returns the metric's source for its generation and mode. A new
// one (new generation or mode) replaces the previous one, whose clusters'
// sources are handed over by cluster key, for the new parts to take over
// (nil when the source is kept).
func (r *FederatedManagedMetricReconciler) source(m *v1alpha1.ManagedMetric, accessName types.NamespacedName, eventDriven bool) (
	*fedManagedSource, map[string]*managedSource, error) {
	name := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
	mode := v1alpha1.ModeOf(eventDriven)
	r.mu.Lock()
	old := r.sources[name]
	r.mu.Unlock()
	if old != nil {
		u := old.currentUpdate()
		if u.Generation == m.Generation && u.Created.Equal(m.CreationTimestamp.Time) && u.Mode == mode {
			return old, nil, nil
		}
	}
	if _, err := r.Guard.CompileManagedMetric(m, schema.GroupKind{}); err != nil {
		return nil, nil, err
	}
	handed := map[string]*managedSource{}
	if old != nil {
		old.fan.Close(func(c federation.Cluster, p *fedManagedPart) {
			if s := p.cur.Swap(nil); s != nil {
				handed[c.Key] = s
			} else if s := p.takeHanded(); s != nil {
				handed[c.Key] = s
			}
		})
	}
	key := coordinator.Key{Kind: federatedManagedMetricKind, Namespace: m.Namespace, Name: m.Name}
	fed := newFederatedSource[*fedManagedPart](r.Coordinator, cmp.Or(r.GracePeriod, DefaultClusterGracePeriod),
		r.Guard.maxSeries(m.Spec.MaxSeries), accessName.String())
	fed.update = managedUpdate(m, key, fed, mode, r.DefaultSink)
	r.mu.Lock()
	if r.sources == nil {
		r.sources = map[types.NamespacedName]*fedManagedSource{}
	}
	r.sources[name] = fed
	r.mu.Unlock()
	return fed, handed, nil
}

// newPart returns the FanOut's start: an empty part, given what the
// previous generation read of its cluster.
func (r *FederatedManagedMetricReconciler) newPart(fed *fedManagedSource, handed map[string]*managedSource) func(federation.Cluster) *fedManagedPart {
	return func(c federation.Cluster) *fedManagedPart {
		p := &fedManagedPart{cluster: c, user: clusterUser(fed.key(), c.Key), handed: handed[c.Key]}
		delete(handed, c.Key)
		return p
	}
}

// stopPart drops what a part reads and lets go of its cluster's
// connection and CRD watch.
func (r *FederatedManagedMetricReconciler) stopPart(_ federation.Cluster, p *fedManagedPart) {
	r.reader().dropParts(p.cur.Swap(nil))
	r.reader().dropParts(p.takeHanded())
	r.Kinds.Release(p.user)
	r.Clusters.Release(p.user)
}

// readCluster reads one cluster of the metric: it connects, finds the
// cluster's managed kinds, keeps one part per kind and, polling, reads
// them within ctx's deadline. notReady is the reason the access reports
// for the cluster, if any. It records the cluster's state on the FanOut
// and reports whether that state changed and whether its series did.
func (r *FederatedManagedMetricReconciler) readCluster(ctx context.Context, m *v1alpha1.ManagedMetric, fed *fedManagedSource,
	mb federation.Member[*fedManagedPart], notReady string, eventDriven bool) (stateChanged, seriesChanged bool) {
	p, key := mb.Part, mb.Cluster.Key
	conn, err := r.Clusters.Acquire(key, p.user)
	if err != nil {
		// The Set's message names a RemoteClusterAccess and wraps the
		// cause in ClusterUnreachable; the access's status names it.
		why := cmp.Or(notReady, reason.Of(err, v1alpha1.ReasonClusterUnreachable))
		r.stopReading(p)
		r.Kinds.Release(p.user)
		return fed.fan.Fail(key, reason.New(why,
			"it cannot be connected (%s): see the FederatedClusterAccess %s's status.clusters", why, fed.access)), false
	}
	kinds := r.Kinds.Acquire(p.user, conn.Key, conn.Name, conn.Clients.Dynamic)
	if !kinds.Synced() {
		if err := kinds.Err(); err != nil {
			// Its parts, if any, are kept: an unreachable cluster's
			// series stay for the grace period.
			return fed.fan.Fail(key, err), false
		}
		return false, false // its sync enqueues the metric
	}
	old := p.cur.Load()
	if old == nil {
		old = p.takeHanded()
	}
	src := old
	if src == nil || !src.keeps(m.Generation, m.CreationTimestamp.Time, fed.update.Mode, conn) {
		src = newManagedSource(p.user, conn, fed.maxSeries)
		src.update = fed.update
		src.report = clusterReport{fed: fed, part: p, src: src}
	}
	if src != old {
		fed.fan.Restart(key)
	}
	err = r.reader().apply(m, old, src, matchKinds(kinds.Kinds(), nil), "", eventDriven,
		func(src *managedSource) { p.cur.Store(src) })
	if err != nil {
		// Only a spec the operator refuses fails here; it was compiled
		// already, so this is a kind's compilation.
		r.stopReading(p)
		return fed.fan.Fail(key, err), false
	}
	if eventDriven {
		return src != old, false
	}
	changed, _, err := r.reader().poll(ctx, src, r.Clusters, conn, m.Spec.LabelSelector, min(managedInterval(m), pollTimeout))
	if errors.Is(err, clusters.ErrBusy) {
		fed.busy.Store(true) // read again shortly
		return false, false
	}
	if err != nil {
		return fed.fan.Fail(key, clusterfault.Classify(err)), false
	}
	return fed.fan.Synced(key), changed
}

// stopReading drops what a part reads of its cluster, keeping its hold
// on the connection and CRD watch.
func (r *FederatedManagedMetricReconciler) stopReading(p *fedManagedPart) {
	r.reader().dropParts(p.cur.Swap(nil))
	r.reader().dropParts(p.takeHanded())
}

// release lets go of a cluster's connection and CRD watch.
func (r *FederatedManagedMetricReconciler) release(key coordinator.Key, cluster string) {
	user := clusterUser(key, cluster)
	r.Kinds.Release(user)
	r.Clusters.Release(user)
}

// clusterUser names a metric as a user of one cluster's connection and
// CRD watch: "<kind>/<namespace>/<name>@<cluster key>".
func clusterUser(key coordinator.Key, cluster string) string { return key.String() + "@" + cluster }

// fail drops everything the metric reads and reports err.
func (r *FederatedManagedMetricReconciler) fail(f *v1alpha1.FederatedManagedMetric, err error, requeue time.Duration) (ctrl.Result, error) {
	return r.ManagedReading.fail(coordinator.Key{Kind: federatedManagedMetricKind, Namespace: f.Namespace, Name: f.Name},
		f.Generation, err, requeue, r.drop)
}

// drop removes every cluster's subscriptions, stops the watches no other
// metric uses and lets go of the clusters.
func (r *FederatedManagedMetricReconciler) drop(name types.NamespacedName) {
	r.mu.Lock()
	fed := r.sources[name]
	delete(r.sources, name)
	r.mu.Unlock()
	if fed != nil {
		fed.fan.Close(r.stopPart)
	}
}

// Observation returns the cluster counts of a metric, for its status.
func (r *FederatedManagedMetricReconciler) Observation(name types.NamespacedName) v1alpha1.FederatedObservation {
	r.mu.Lock()
	fed := r.sources[name]
	r.mu.Unlock()
	if fed == nil {
		return v1alpha1.FederatedObservation{}
	}
	return fed.observation()
}

// asManagedMetric is the ManagedMetric a FederatedManagedMetric reads on
// each cluster: every managed kind, the default dimensions.
func asManagedMetric(f *v1alpha1.FederatedManagedMetric) *v1alpha1.ManagedMetric {
	s := &f.Spec
	return &v1alpha1.ManagedMetric{ObjectMeta: f.ObjectMeta, Spec: v1alpha1.ManagedMetricSpec{
		Name: s.Name, Description: s.Description, LabelSelector: s.LabelSelector, FieldSelector: s.FieldSelector,
		ServiceAccountName: s.ServiceAccountName, Interval: s.Interval, MaxSeries: s.MaxSeries, EventDriven: s.EventDriven,
		DataSinkRef: s.DataSinkRef}}
}

// SetupWithManager registers the reconciler. Besides the metrics it
// follows their accesses: a cluster that joins or leaves an access, a
// cluster connection that changes and managed kinds that appear or go
// enqueue the metrics of that access.
func (r *FederatedManagedMetricReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.FederatedManagedMetric{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Named("federatedmanagedmetric").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		Watches(&v1alpha1.FederatedClusterAccess{}, handler.EnqueueRequestsFromMapFunc(
			func(ctx context.Context, o client.Object) []reconcile.Request {
				return r.ofAccess(ctx, types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()})
			})).
		WatchesRawSource(keySource(func(f func(string)) {
			r.Members.Subscribe(func(a types.NamespacedName) { f(a.String()) })
		}, r.ofClusterKey)).
		WatchesRawSource(keySource(r.Clusters.Subscribe, r.ofClusterKey)).
		WatchesRawSource(keySource(r.Kinds.Subscribe, r.ofClusterKey))
	if r.Shard != nil {
		b = b.WatchesRawSource(shardSource(r.Shard, federatedManagedMetricKind, federatedManagedMetricKind, mgr.GetClient(), func() client.ObjectList { return &v1alpha1.FederatedManagedMetricList{} }))
	}
	return b.Complete(r)
}

// ofClusterKey returns a request for every metric of the access a key
// names: an access ("namespace/name") or one of its clusters
// (FederatedClusterKey). Keys of RemoteClusterAccesses name no access.
func (r *FederatedManagedMetricReconciler) ofClusterKey(ctx context.Context, key string) []reconcile.Request {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) < 2 {
		return nil
	}
	return r.ofAccess(ctx, types.NamespacedName{Namespace: parts[0], Name: parts[1]})
}

// ofAccess returns a request for every metric of the access.
func (r *FederatedManagedMetricReconciler) ofAccess(ctx context.Context, accessName types.NamespacedName) []reconcile.Request {
	list := &v1alpha1.FederatedManagedMetricList{}
	if err := r.Client.List(ctx, list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing FederatedManagedMetrics after a change of their clusters failed")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		f := &list.Items[i]
		ref := f.Spec.FederateClusterAccessRef
		if ref.Name == accessName.Name && cmp.Or(ref.Namespace, f.Namespace) == accessName.Namespace {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: f.Namespace, Name: f.Name}})
		}
	}
	return reqs
}
