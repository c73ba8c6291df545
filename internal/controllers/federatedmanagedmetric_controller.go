package controllers

import (
	"cmp"
	"context"
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

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
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
// cluster its FederatedClusterAccess discovers (federation.Members). Each
// cluster is read as a remote ManagedMetric reads its cluster (its
// connection, its CRD watch, one part per managed kind on the shared
// watch of the kind), and the clusters' series are exported as one
// family with the cluster dimension. A cluster that joins is read from
// then on, one that leaves takes its parts, watches and series along, and
// one that fails is left out while the others go on.
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

	mu      sync.Mutex
	sources map[types.NamespacedName]*federatedManagedSource
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
	m := asManagedMetric(f)
	eventDriven := f.IsEventDriven(r.EventDrivenDefault)
	fed, prev, err := r.source(m, eventDriven)
	if err != nil {
		return r.fail(f, err, 0) // the spec must change first
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
	r.mu.Lock()
	if r.sources == nil {
		r.sources = map[types.NamespacedName]*federatedManagedSource{}
	}
	r.sources[req.NamespacedName] = fed
	r.mu.Unlock()

	members := r.Members.Clusters(accessName)
	changed := fed != prev.fed
	reasons := map[string]string{}
	for _, dc := range fca.Status.Clusters {
		if !dc.Ready {
			reasons[dc.ClusterName] = dc.Reason
		}
	}
	for _, c := range members {
		c, err := r.readCluster(ctx, m, fed, prev, c, reasons[c.Name], eventDriven)
		if err != nil {
			return ctrl.Result{}, err
		}
		changed = changed || c
	}
	if r.forgetClusters(fed, prev, members) {
		changed = true
	}
	// A poll publishes every interval, the heartbeat; events publish when
	// a cluster's phase or the set of clusters changed.
	fed.evaluate(changed || !eventDriven, changed)
	next := recheckInterval
	if !eventDriven {
		next = managedInterval(m)
	}
	if fed.counts().PendingCount > 0 {
		// A cluster whose CRD watch has not listed yet.
		return ctrl.Result{RequeueAfter: time.Second}, errUnsettled
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// previous is what a metric read before this reconcile: its source, and
// the sources of its clusters, which a new generation's clusters take
// over so that their series have no gap.
type previous struct {
	fed     *federatedManagedSource
	sources map[string]*managedSource
}

// source returns the metric's source: the current one, or a new one for a
// new generation or mode; and what the metric had before.
func (r *FederatedManagedMetricReconciler) source(m *v1alpha1.ManagedMetric, eventDriven bool) (*federatedManagedSource, previous, error) {
	name := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
	mode := v1alpha1.ModeOf(eventDriven)
	r.mu.Lock()
	old := r.sources[name]
	r.mu.Unlock()
	prev := previous{fed: old, sources: map[string]*managedSource{}}
	if old != nil {
		for _, k := range old.keys() {
			if s := old.source(k); s != nil {
				prev.sources[k] = s
			}
		}
		u := old.update
		if u.Generation == m.Generation && u.Created.Equal(m.CreationTimestamp.Time) && u.Mode == mode {
			return old, prev, nil
		}
	}
	if _, err := r.Guard.CompileManagedMetric(m, schema.GroupKind{}); err != nil {
		return nil, prev, err
	}
	key := coordinator.Key{Kind: federatedManagedMetricKind, Namespace: m.Namespace, Name: m.Name}
	fed := &federatedManagedSource{coord: r.Coordinator, maxSeries: r.Guard.maxSeries(m.Spec.MaxSeries),
		clusters: map[string]*federatedCluster{}}
	fed.update = managedUpdate(m, key, fed, mode, r.DefaultSink)
	return fed, prev, nil
}

// readCluster reads one cluster of the metric: it connects, finds the
// cluster's managed kinds, keeps one part per kind and, polling, reads
// them. notReady is the reason the access reports for the cluster, if
// any. It reports whether the cluster's phase changed; an error is one
// of the local API server, for a retry.
func (r *FederatedManagedMetricReconciler) readCluster(ctx context.Context, m *v1alpha1.ManagedMetric, fed *federatedManagedSource,
	prev previous, c federation.Cluster, notReady string, eventDriven bool) (bool, error) {
	user := clusterUser(fed.update.Key, c.Key)
	conn, err := r.Clusters.Acquire(c.Key, user)
	if err != nil {
		// The Set's message names a RemoteClusterAccess and wraps the
		// cause in ClusterUnreachable; the access's status names it.
		why := cmp.Or(notReady, reason.Of(err, v1alpha1.ReasonClusterUnreachable))
		return r.failCluster(fed, prev, c, reason.New(why,
			"it cannot be connected (%s): see the FederatedClusterAccess's status.clusters", why)), nil
	}
	kinds := r.Kinds.Acquire(user, conn.Key, conn.Name, conn.Clients.Dynamic)
	if !kinds.Synced() {
		if err := kinds.Err(); err != nil {
			return r.failCluster(fed, prev, c, err), nil
		}
		if fed.source(c.Key) != nil {
			delete(prev.sources, c.Key) // it keeps its parts meanwhile
		} else {
			fed.pend(c.Key, c.Name)
		}
		return false, nil
	}
	old := prev.sources[c.Key]
	src := old
	if src == nil || !src.keeps(m.Generation, m.CreationTimestamp.Time, fed.update.Mode, conn) {
		src = newManagedSource(user, conn, fed.maxSeries)
		src.update = fed.update
		src.report = clusterReport{fed: fed, key: c.Key, src: src}
	}
	before := fed.counts()
	err = r.reader().apply(m, old, src,
		matchKinds(kinds.Kinds(), nil), "", eventDriven, func(src *managedSource) { fed.install(c.Key, c.Name, src) })
	if err != nil {
		if !reason.Is(err) {
			return false, err
		}
		return r.failCluster(fed, prev, c, err), nil
	}
	delete(prev.sources, c.Key)
	if !eventDriven {
		changed, _, err := r.reader().poll(ctx, src, conn.Lister, m.Spec.LabelSelector, managedInterval(m))
		switch {
		case err != nil:
			fed.set(c.Key, src, clusterFailed, clusters.Classify(err))
		default:
			fed.set(c.Key, src, clusterActive, nil)
		}
		return changed || fed.counts() != before, nil
	}
	return fed.counts() != before, nil
}

// failCluster records that a cluster cannot be read, drops what it read
// and lets go of its CRD watch; it reports true, a phase change.
func (r *FederatedManagedMetricReconciler) failCluster(fed *federatedManagedSource, prev previous, c federation.Cluster, err error) bool {
	old := fed.fail(c.Key, c.Name, err)
	r.reader().dropParts(old)
	if s := prev.sources[c.Key]; s != old {
		r.reader().dropParts(s)
	}
	delete(prev.sources, c.Key)
	r.Kinds.Release(clusterUser(fed.update.Key, c.Key))
	return true
}

// forgetClusters drops the clusters that left the access, and what the
// previous generation read and this one did not take over. It reports
// whether a cluster left.
func (r *FederatedManagedMetricReconciler) forgetClusters(fed *federatedManagedSource, prev previous, members []federation.Cluster) bool {
	now := make(map[string]bool, len(members))
	for _, c := range members {
		now[c.Key] = true
	}
	left := false
	for _, k := range fed.keys() {
		if !now[k] {
			r.reader().dropParts(fed.source(k))
			fed.remove(k)
			r.release(fed.update.Key, k)
			left = true
		}
	}
	for k, s := range prev.sources {
		r.reader().dropParts(s)
		if !now[k] {
			r.release(fed.update.Key, k)
		}
	}
	return left
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
	if fed == nil {
		return
	}
	for _, k := range fed.keys() {
		r.reader().dropParts(fed.source(k))
		r.release(fed.update.Key, k)
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
	return fed.counts()
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
