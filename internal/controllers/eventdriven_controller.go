package controllers

import (
	"context"
	"errors"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/startup"
	"github.com/SAP/metrics-operator/internal/targets"
)

// recheckInterval is how often an event-driven metric is looked at again
// while its watch cannot run (a missing CRD, say), so it recovers alone.
const recheckInterval = 15 * time.Second

// eventsHolder names the EventDrivenReconciler as a holder of the
// Metrics it serves (Shard.Hold).
const eventsHolder = "metric-eventdriven"

// registrationWorkers is how many Metrics are registered at once. A
// registration costs well under a millisecond of CPU but several wake-ups
// of other goroutines (the queue, the watch that lists for joining
// metrics); on a loaded machine one at a time waited for each: a replica
// taking over a killed one's thousand metrics registered about 250 a
// second while using a tenth of a core.
const registrationWorkers = 4

// EventDrivenReconciler is the EventDrivenController: for every Metric in
// event-driven mode it compiles the spec, registers the metric's interest
// in the TargetRegistry and makes the DynamicInformerManager run the
// shared watch it needs; it drops both when the metric is deleted, changes
// target or goes back to polling. Once the watch has given the metric its
// objects, the metric is published to the coordinator; every event that
// changes its series after that is a Changed call.
type EventDrivenReconciler struct {
	Client      client.Client
	Lister      *targets.Lister
	Registry    *registry.Registry
	Informers   *informers.Manager
	Coordinator *coordinator.Coordinator
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
	// Clusters holds the connections to the clusters metrics read; nil:
	// only the local one, through Lister.
	Clusters *clusters.Set
	// Startup is told when a metric is settled (registered, or nothing to
	// register); nil: nobody waits.
	Startup *startup.Gate
	// Shard, if set, is this replica's share of the metrics.
	Shard Shard

	// conns is the connection each registered metric was registered
	// through (by coordinator key): a renamed or rebuilt connection
	// registers the metric anew.
	conns sync.Map
	// gates hold the standby gate of each registered metric (by
	// coordinator key); keys serializes a metric's reconcile and its
	// promotion.
	gates sync.Map
	keys  keyLocks
}

// Reconcile registers or drops one Metric's subscription.
func (r *EventDrivenReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	return settle(r.Startup, metricKind, req.NamespacedName, res, err)
}

func (r *EventDrivenReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := coordinator.Key{Kind: metricKind, Namespace: req.Namespace, Name: req.Name}
	defer r.keys.lock(key)()
	// standby: this replica keeps the metric ready, unpublished, to serve
	// it the moment the shard lets it.
	standby := false
	if !serves(r.Shard, eventsHolder, key) {
		standby = standsBy(r.Shard, eventsHolder, key)
		if standby {
			// Its registration stays, unpublished. Whatever this replica
			// served of the metric goes all the same, and so does its hold
			// on the shard, which the view waits for even if nothing was
			// published (a polling or refused metric).
			r.demote(key)
			r.withdraw(key)
		} else {
			r.remove(key)
		}
		if !standby {
			return ctrl.Result{}, notServedYet(r.Shard, key)
		}
	}
	m := &v1alpha1.Metric{}
	if err := r.Client.Get(ctx, req.NamespacedName, m); err != nil {
		if apierrors.IsNotFound(err) {
			r.remove(key)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !m.IsEventDriven(r.EventDrivenDefault) {
		// The polling reconciler publishes under the same key; the last
		// series stay exported until it does.
		r.drop(key)
		return ctrl.Result{}, nil
	}
	if err := r.Access.CheckReferences(m.Namespace, access.MetricReferences(&m.Spec)...); err != nil {
		r.fail(key, m.Generation, err, standby)
		return ctrl.Result{}, nil
	}
	conn, err := metricConnection(r.Clusters, eventsUser(key), m, r.Lister, r.ClusterName)
	if err != nil {
		r.fail(key, m.Generation, err, standby)
		return ctrl.Result{RequeueAfter: recheckInterval}, nil
	}
	if ik, sub, ok := r.Registry.Lookup(key.String()); ok && sub.Generation == m.Generation &&
		!limitRetryDue(sub.Aggregate, intervalOf(m)) && r.sameConnection(key, conn) {
		// Registered for this spec: make sure it may still read and its
		// watch still runs.
		if err := r.authorize(ctx, conn, m, ik); err != nil {
			if errors.Is(err, access.ErrPending) {
				return ctrl.Result{RequeueAfter: recheckInterval}, err
			}
			if !reason.Is(err) {
				r.drop(key)
				return ctrl.Result{}, err
			}
			r.fail(key, m.Generation, err, standby)
			return ctrl.Result{RequeueAfter: recheckInterval}, nil
		}
		gvk := m.Spec.Target.GVK()
		if mapping, err := resolveTarget(ctx, r.Clusters, conn, gvk); err == nil {
			gvk = mapping.GroupVersionKind
		}
		if err := r.Informers.Ensure(ik, gvk, sub); err != nil {
			return ctrl.Result{}, err
		}
		if !standby {
			r.promote(ctx, key)
		}
		return ctrl.Result{RequeueAfter: recheckInterval}, nil
	}

	e, err := r.Guard.CompileMetric(m)
	if err != nil {
		r.fail(key, m.Generation, err, standby)
		return ctrl.Result{}, nil
	}
	ik, gvk, err := metricInformerKey(ctx, r.Clusters, m, conn)
	if errors.Is(err, clusters.ErrBusy) {
		// Its cluster has its share of the workers already; whatever the
		// metric exports meanwhile stays as it is.
		return ctrl.Result{RequeueAfter: busyRetry()}, errUnsettled
	}
	if err == nil {
		err = r.authorize(ctx, conn, m, ik)
	}
	if errors.Is(err, access.ErrPending) {
		// The Checker sends the metric back once its access is decided;
		// whatever it exports meanwhile stays as it is.
		return ctrl.Result{RequeueAfter: recheckInterval}, err
	}
	if err != nil {
		if !reason.Is(err) {
			r.drop(key)
			return ctrl.Result{}, err
		}
		r.fail(key, m.Generation, err, standby)
		return ctrl.Result{RequeueAfter: recheckInterval}, nil
	}
	// The series and the objects of a metadata-only watch carry the kind
	// as the API server names it, however the spec wrote it (pod, Pods),
	// as a poll's objects do.
	m.Spec.Target.Kind = gvk.Kind
	sub := r.subscription(m, e, conn.Name, standby)
	r.conns.Store(key, conn)
	_, old, _ := r.Registry.Lookup(key.String())
	if previous, moved := r.Registry.Register(ik, sub); moved {
		r.Informers.Release(previous)
	}
	if old != nil {
		old.Aggregate.Close()
	}
	// Logged before Ensure: once the watch runs, its lines (synced,
	// events) may come at any time, and they follow the registration.
	ctrl.LoggerFrom(ctx).Info("Metric registered for events",
		append([]any{"metric", key.String(), "metadataOnly", sub.MetadataOnly, "standby", standby}, ik.LogValues()...)...)
	if err := r.Informers.Ensure(ik, gvk, sub); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: recheckInterval}, nil
}

// metricInformerKey resolves the metric's target to the watch it needs
// and to the kind as the API server names it; a remote cluster's
// discovery is waited for within resolveTimeout, through its gate.
func metricInformerKey(ctx context.Context, set *clusters.Set, m *v1alpha1.Metric, conn *clusters.Connection) (
	registry.InformerKey, schema.GroupVersionKind, error) {
	mapping, err := resolveTarget(ctx, set, conn, m.Spec.Target.GVK())
	if err != nil {
		return registry.InformerKey{}, schema.GroupVersionKind{}, err
	}
	k := registry.InformerKey{Cluster: conn.Key, GVR: mapping.Resource}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		k.Namespace = m.Spec.Namespace
	}
	return k, mapping.GroupVersionKind, nil
}

// authorize asks the local API server whether the metric may read ik; a
// remote cluster's own RBAC decides what its identity may read there.
func (r *EventDrivenReconciler) authorize(ctx context.Context, conn *clusters.Connection, m *v1alpha1.Metric, ik registry.InformerKey) error {
	if conn.Remote {
		return nil
	}
	return r.Access.Authorize(ctx, accessRequest(m, ik.GVR, ik.Namespace))
}

// sameConnection reports whether the metric was registered through conn.
func (r *EventDrivenReconciler) sameConnection(key coordinator.Key, conn *clusters.Connection) bool {
	if conn.Key == r.ClusterName && !conn.Remote {
		return true // the local connection never changes
	}
	old, ok := r.conns.Load(key)
	return ok && old.(*clusters.Connection) == conn
}

// eventsUser names an event-driven metric as a user of a cluster connection.
func eventsUser(key coordinator.Key) string { return "events/" + key.String() }

// subscription builds the metric's subscription and its standby gate,
// which holds back what it publishes while standby.
func (r *EventDrivenReconciler) subscription(m *v1alpha1.Metric, e *evaluation.Evaluator, cluster string, standby bool) *registry.Subscription {
	key := coordinator.Key{Kind: metricKind, Namespace: m.Namespace, Name: m.Name}
	agg := r.Guard.Aggregate(m.Namespace, e, m.Spec.MaxSeries)
	update := metricUpdate(m, v1alpha1.ModeEventDriven, intervalOf(m), r.DefaultSink,
		coordinator.AggregateSource{Cluster: cluster, Aggregate: agg}, e)
	limits := &limitReporter{coordinator: r.Coordinator, update: update, agg: agg, tracker: r.Coordinator.Tracker(key)}
	g := &standbyGate{key: key, gen: m.Generation, limits: limits, coord: r.Coordinator}
	g.waiting.Store(standby)
	g.sub = &registry.Subscription{
		ID:           key.String(),
		Generation:   m.Generation,
		Aggregate:    agg,
		MetadataOnly: e.MetadataOnly(),
		OnSynced:     g.synced,
		OnChange:     g.changed,
		OnError:      g.failed,
	}
	if old, ok := r.gates.Swap(key, g); ok {
		old.(*standbyGate).drop()
	}
	return g.sub
}

// fail drops the metric for err, which it reports unless it stands by:
// a metric kept ready tells nobody anything until this replica serves it.
func (r *EventDrivenReconciler) fail(key coordinator.Key, gen int64, err error, standby bool) {
	r.drop(key)
	if !standby {
		r.Coordinator.SetError(key, gen, err)
	}
}

// drop removes the metric's subscription and stops its watch if no other
// metric uses it.
func (r *EventDrivenReconciler) drop(key coordinator.Key) {
	if g, ok := r.gates.LoadAndDelete(key); ok {
		g.(*standbyGate).drop()
	}
	_, sub, _ := r.Registry.Lookup(key.String())
	if ik, ok := r.Registry.Unregister(key.String()); ok {
		// Logged before Release, which may stop the watch and log it.
		ctrl.Log.WithName("eventdriven").Info("Metric dropped from events",
			append([]any{"metric", key.String()}, ik.LogValues()...)...)
		r.Informers.Release(ik)
	}
	if sub != nil {
		sub.Aggregate.Close() // gives its series back to the budget
	}
	r.conns.Delete(key)
	releaseConnection(r.Clusters, eventsUser(key))
}

// remove drops everything of a metric that is gone or that another
// replica serves.
func (r *EventDrivenReconciler) remove(key coordinator.Key) {
	r.drop(key)
	r.Access.Forget(metricKind, types.NamespacedName{Namespace: key.Namespace, Name: key.Name})
	r.withdraw(key)
}

// withdraw ends what this replica serves of a metric: its entry in the
// coordinator (the error status a refused metric reports, say) and its
// hold on the shard, which every other member waits for (in this
// replica's acknowledgement of the view) before the new owner serves it.
func (r *EventDrivenReconciler) withdraw(key coordinator.Key) {
	r.Coordinator.Remove(key)
	released(r.Shard, eventsHolder, key)
}

// SetupWithManager registers the reconciler under its own name beside the
// polling one; both see every Metric and each handles its mode.
func (r *EventDrivenReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Metric{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Named("metric-eventdriven").
		WithOptions(controller.Options{MaxConcurrentReconciles: registrationWorkers})
	if r.Access != nil {
		// A granted or revoked access takes effect at once.
		b = b.WatchesRawSource(r.Access.Source(metricKind))
	}
	if r.Clusters != nil {
		b = b.WatchesRawSource(clusterSource(r.Clusters, mgr.GetClient()))
	}
	if r.Shard != nil {
		// Metrics kept ready are published before the reconciles of the
		// change are enqueued, which would contend with them.
		b = b.WatchesRawSource(shardSourceAfter(r.Shard, eventsHolder, metricKind, mgr.GetClient(),
			func() client.ObjectList { return &v1alpha1.MetricList{} }, r.promoteReady))
	}
	return b.Complete(r)
}
