package controllers

import (
	"cmp"
	"context"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/startup"
)

// federatedMetricKind is the coordinator's Key.Kind for FederatedMetrics.
const federatedMetricKind = "FederatedMetric"

// DefaultClusterGracePeriod is how long an unreachable cluster's series
// stay exported when the reconciler is given no grace period.
const DefaultClusterGracePeriod = time.Minute

// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=federatedmetrics,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=federatedmetrics/status,verbs=get;patch;update

// FederatedMetricReconciler keeps FederatedMetrics current in both modes:
// a Metric's evaluation on every cluster its FederatedClusterAccess
// discovers (federation.Members), one part per cluster (see fedPart). A
// cluster that appears gets a part at once, one that goes has its part
// and series dropped. One reconciler serves both modes, as for
// ManagedMetric: reconciles of one object never overlap, so a poll never
// publishes over a metric that switched to events.
type FederatedMetricReconciler struct {
	Client      client.Client
	Registry    *registry.Registry
	Informers   *informers.Manager
	Coordinator *coordinator.Coordinator
	Clusters    *clusters.Set
	Members     *federation.Members
	// DefaultSink is the DataSink of metrics without dataSinkRef.
	DefaultSink types.NamespacedName
	// Guard refuses reserved names and bounds what a metric may hold.
	Guard Guard
	// EventDrivenDefault is the mode of metrics that choose none.
	EventDrivenDefault bool
	// Access refuses references into other namespaces; nil allows all.
	// What a federated metric reads on its clusters is decided by their
	// own RBAC for the identity of each cluster's kubeconfig, as for a
	// Metric on a RemoteClusterAccess.
	Access *access.Checker
	// GracePeriod is how long an unreachable cluster's series stay
	// exported (zero: DefaultClusterGracePeriod).
	GracePeriod time.Duration
	// Workers is how many metrics are reconciled at once (default 1).
	Workers int
	// Startup is told when a metric is settled (registered, or nothing to
	// register); nil: nobody waits.
	Startup *startup.Gate
	// Shard, if set, is this replica's share of the metrics.
	Shard Shard

	mu      sync.Mutex
	sources map[types.NamespacedName]*fedSource
}

// Reconcile spreads one FederatedMetric over its access's clusters.
func (r *FederatedMetricReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	return settle(r.Startup, federatedMetricKind, req.NamespacedName, res, err)
}

func (r *FederatedMetricReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := coordinator.Key{Kind: federatedMetricKind, Namespace: req.Namespace, Name: req.Name}
	if !serves(r.Shard, federatedMetricKind, key) {
		r.remove(key)
		return ctrl.Result{}, notServedYet(r.Shard, key)
	}
	fm := &v1alpha1.FederatedMetric{}
	if err := r.Client.Get(ctx, req.NamespacedName, fm); err != nil {
		if apierrors.IsNotFound(err) {
			r.remove(key)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if err := r.Access.CheckReferences(fm.Namespace, access.FederatedMetricReferences(&fm.Spec)...); err != nil {
		return r.fail(fm, err, 0)
	}
	accessName := accessOf(fm)
	if err := r.Client.Get(ctx, accessName, &v1alpha1.FederatedClusterAccess{}); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		return r.fail(fm, reason.New(v1alpha1.ReasonClusterUnreachable,
			"the FederatedClusterAccess %s does not exist (yet): create it, or fix spec.federateClusterAccessRef", accessName), recheckInterval)
	}
	eventDriven := fm.IsEventDriven(r.EventDrivenDefault)
	src, fresh, err := r.source(fm, eventDriven)
	if err != nil {
		return r.fail(fm, err, 0) // the spec must change first
	}
	changed := src.fan.Sync(r.Members.Clusters(accessName), r.newPart(src), r.stopPart)
	if !eventDriven {
		return r.poll(ctx, src)
	}
	if r.watch(ctx, src) || fresh || changed {
		src.evaluate(true)
	}
	if src.busy.Load() {
		return ctrl.Result{RequeueAfter: busyRetry()}, nil
	}
	return ctrl.Result{RequeueAfter: recheckInterval}, nil
}

// accessOf names the metric's FederatedClusterAccess.
func accessOf(fm *v1alpha1.FederatedMetric) types.NamespacedName {
	ref := fm.Spec.FederateClusterAccessRef
	return types.NamespacedName{Namespace: cmp.Or(ref.Namespace, fm.Namespace), Name: ref.Name}
}

// asMetric is the Metric a FederatedMetric is on each of its clusters: the
// same spec, in all namespaces. Compiling, resolving the target and
// describing the metric to the coordinator go through it, so both kinds
// check (reserved names, Secret paths, projections, limits) and export
// alike.
func asMetric(fm *v1alpha1.FederatedMetric) *v1alpha1.Metric {
	s := &fm.Spec
	return &v1alpha1.Metric{ObjectMeta: fm.ObjectMeta, Spec: v1alpha1.MetricSpec{
		Name: s.Name, Description: s.Description, Target: s.Target, ServiceAccountName: s.ServiceAccountName,
		LabelSelector: s.LabelSelector, FieldSelector: s.FieldSelector, Interval: s.Interval, MaxSeries: s.MaxSeries,
		EventDriven: s.EventDriven, Projections: s.Projections, ValueFrom: s.ValueFrom, DataSinkRef: s.DataSinkRef,
	}}
}

// source returns the metric's source for its generation and mode,
// compiling the spec and dropping the previous one's parts when either
// changed.
func (r *FederatedMetricReconciler) source(fm *v1alpha1.FederatedMetric, eventDriven bool) (*fedSource, bool, error) {
	name := types.NamespacedName{Namespace: fm.Namespace, Name: fm.Name}
	mode := v1alpha1.ModeOf(eventDriven)
	r.mu.Lock()
	old := r.sources[name]
	r.mu.Unlock()
	if old != nil {
		u := old.currentUpdate()
		if u.Generation == fm.Generation && u.Mode == mode && u.Created.Equal(fm.CreationTimestamp.Time) {
			return old, false, nil
		}
	}
	r.drop(name)
	m := asMetric(fm)
	e, err := r.Guard.CompileMetric(m)
	if err != nil {
		return nil, false, err
	}
	src := &fedSource{metric: m, eval: e, federatedSource: newFederatedSource[*fedPart](r.Coordinator,
		cmp.Or(r.GracePeriod, DefaultClusterGracePeriod), r.Guard.maxSeries(m.Spec.MaxSeries), accessOf(fm).String())}
	src.update = metricUpdate(m, mode, intervalOf(m), r.DefaultSink, src, e)
	src.update.Key.Kind = federatedMetricKind
	r.mu.Lock()
	if r.sources == nil {
		r.sources = map[types.NamespacedName]*fedSource{}
	}
	r.sources[name] = src
	r.mu.Unlock()
	return src, true, nil
}

// newPart returns the FanOut's start: an empty part, read by watch or
// poll.
func (r *FederatedMetricReconciler) newPart(src *fedSource) func(federation.Cluster) *fedPart {
	return func(c federation.Cluster) *fedPart {
		return &fedPart{cluster: c, id: src.key().String() + "@" + c.Key}
	}
}

// stopPart drops a part's subscription, its watch if no other metric
// uses it, its series and its hold on the cluster's connection.
func (r *FederatedMetricReconciler) stopPart(_ federation.Cluster, p *fedPart) {
	r.retire(p, p.cur.Swap(nil))
	r.Clusters.Release(p.id)
}

// retire ends one reading of a part.
func (r *FederatedMetricReconciler) retire(p *fedPart, old *fedReading) {
	if old == nil {
		return
	}
	if old.sub != nil {
		if ik, ok := r.Registry.Unregister(p.id); ok {
			// Logged before Release, which may stop the watch and log it.
			fedLog.Info("Metric dropped from events", append([]any{"metric", p.id}, ik.LogValues()...)...)
			r.Informers.Release(ik)
		}
	}
	old.agg.Close() // gives its series back to the budget
}

// connect acquires the part's connection, or says why it cannot.
func (r *FederatedMetricReconciler) connect(src *fedSource, p *fedPart) (*clusters.Connection, error) {
	conn, err := r.Clusters.Acquire(p.cluster.Key, p.id)
	if err != nil {
		return nil, reason.New(v1alpha1.ReasonClusterUnreachable,
			"the FederatedClusterAccess %s has no usable connection to it (%s): see its status.clusters",
			src.access, reason.Of(err, v1alpha1.ReasonClusterUnreachable))
	}
	return conn, nil
}

// fail drops the metric's parts and reports err.
func (r *FederatedMetricReconciler) fail(fm *v1alpha1.FederatedMetric, err error, requeue time.Duration) (ctrl.Result, error) {
	r.drop(types.NamespacedName{Namespace: fm.Namespace, Name: fm.Name})
	r.Coordinator.SetError(coordinator.Key{Kind: federatedMetricKind, Namespace: fm.Namespace, Name: fm.Name}, fm.Generation, err)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// drop stops every part of the metric.
func (r *FederatedMetricReconciler) drop(name types.NamespacedName) {
	r.mu.Lock()
	src := r.sources[name]
	delete(r.sources, name)
	r.mu.Unlock()
	if src != nil {
		src.fan.Close(r.stopPart)
	}
}

// Observation counts the clusters of a FederatedMetric by state, for its
// status: none while it is not spread over clusters (it failed as a
// whole, or is gone).
func (r *FederatedMetricReconciler) Observation(key coordinator.Key) v1alpha1.FederatedObservation {
	r.mu.Lock()
	src := r.sources[types.NamespacedName{Namespace: key.Namespace, Name: key.Name}]
	r.mu.Unlock()
	if src == nil {
		return v1alpha1.FederatedObservation{}
	}
	return src.observation()
}

// fedLog carries the lifecycle lines of FederatedMetrics' clusters, with
// the keys every component uses (metric; cluster, resource, namespace).
var fedLog = ctrl.Log.WithName("federatedmetric")

// remove drops everything of a metric that is gone or that another
// replica serves.
func (r *FederatedMetricReconciler) remove(key coordinator.Key) {
	name := types.NamespacedName{Namespace: key.Namespace, Name: key.Name}
	r.drop(name)
	r.Access.Forget(federatedMetricKind, name)
	r.Coordinator.Remove(key)
	released(r.Shard, federatedMetricKind, key)
}

// SetupWithManager registers the reconciler. Besides FederatedMetrics it
// follows the accesses' clusters: a cluster that appears, goes or is
// renamed, and a cluster connection that is rebuilt, becomes usable or
// unusable, enqueues the FederatedMetrics of that access.
func (r *FederatedMetricReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.FederatedMetric{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Named("federatedmetric").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		WatchesRawSource(r.membersSource(mgr.GetClient()))
	if r.Shard != nil {
		b = b.WatchesRawSource(shardSource(r.Shard, federatedMetricKind, federatedMetricKind, mgr.GetClient(), func() client.ObjectList { return &v1alpha1.FederatedMetricList{} }))
	}
	return b.Complete(r)
}

// membersSource enqueues the FederatedMetrics of an access whose clusters
// or cluster connections changed.
func (r *FederatedMetricReconciler) membersSource(reader client.Reader) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		enqueue := func(accessName types.NamespacedName) {
			if ctx.Err() != nil {
				return
			}
			list := &v1alpha1.FederatedMetricList{}
			if err := reader.List(ctx, list); err != nil {
				return
			}
			for i := range list.Items {
				if accessOf(&list.Items[i]) == accessName {
					q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
				}
			}
		}
		r.Members.Subscribe(enqueue)
		r.Clusters.Subscribe(func(key string) {
			// A discovered cluster's key starts with its access's
			// namespace and name (FederatedClusterKey).
			if parts := strings.SplitN(key, "/", 3); len(parts) == 3 {
				enqueue(types.NamespacedName{Namespace: parts[0], Name: parts[1]})
			}
		})
		return nil
	})
}
