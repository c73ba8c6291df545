package controllers

import (
	"context"
	"errors"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/targets"
)

// metricKind is the coordinator's Key.Kind for Metric objects.
const metricKind = "Metric"

// pollingHolder names the MetricReconciler as a holder of the Metrics it
// serves (Shard.Hold).
const pollingHolder = "metric"

// notFoundRetry bounds how long a metric whose target kind is missing
// waits before it looks again, so installing a CRD is noticed quickly.
const notFoundRetry = 30 * time.Second

// MetricReconciler keeps polling Metrics current: every spec.interval it
// lists the targets, evaluates them and publishes the series to the
// coordinator, which exports them and writes status.
type MetricReconciler struct {
	Client      client.Client
	Lister      *targets.Lister
	Coordinator *coordinator.Coordinator
	// Registry, if set, holds the event-driven subscriptions: a metric
	// registered there is not published by polling.
	Registry *registry.Registry
	// ClusterName is the cluster dimension of local objects.
	ClusterName string
	// DefaultSink is the DataSink of metrics without dataSinkRef.
	DefaultSink types.NamespacedName
	// Guard refuses reserved names and bounds what a metric may hold.
	Guard Guard
	// EventDrivenDefault is the mode of metrics that choose none; the
	// event-driven ones are left to the EventDrivenReconciler.
	EventDrivenDefault bool
	// Workers is how many metrics are read at once (default 1).
	Workers int
	// Access authorizes each metric's reads and references; nil allows all.
	Access *access.Checker
	// Clusters holds the connections to the clusters metrics read; nil:
	// only the local one, through Lister.
	Clusters *clusters.Set
	// Shard, if set, is this replica's share of the metrics.
	Shard Shard

	mu         sync.Mutex
	aggregates map[types.NamespacedName]*compiled
}

// compiled is a metric spec compiled for one generation.
type compiled struct {
	generation int64
	agg        *evaluation.Aggregate
	// broken is set when evaluating the spec panicked: the aggregate may
	// be inconsistent and the spec is not evaluated again.
	broken error
}

// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=metrics,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=metrics/status,verbs=get;patch;update

// What Metrics read is not granted here: config/rbac/targets.yaml binds an
// aggregated ClusterRole that platform admins extend with labelled
// ClusterRoles (v1alpha1.AggregateToOperatorLabel).

// Reconcile evaluates one Metric.
func (r *MetricReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := coordinator.Key{Kind: metricKind, Namespace: req.Namespace, Name: req.Name}
	if !serves(r.Shard, pollingHolder, key) {
		r.remove(key)
		return ctrl.Result{}, nil
	}
	m := &v1alpha1.Metric{}
	if err := r.Client.Get(ctx, req.NamespacedName, m); err != nil {
		if apierrors.IsNotFound(err) {
			r.remove(key)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if m.IsEventDriven(r.EventDrivenDefault) {
		// The EventDrivenReconciler publishes this metric under the same
		// key: its series stay exported while it takes over.
		r.forget(req.NamespacedName)
		releaseConnection(r.Clusters, pollUser(key))
		return ctrl.Result{}, nil
	}
	interval := intervalOf(m)

	if err := r.Access.CheckReferences(m.Namespace, access.MetricReferences(&m.Spec)...); err != nil {
		r.Coordinator.SetError(key, m.Generation, err)
		return ctrl.Result{}, nil
	}
	conn, err := metricConnection(r.Clusters, pollUser(key), m, r.Lister, r.ClusterName)
	if err != nil {
		r.Coordinator.SetError(key, m.Generation, err)
		return ctrl.Result{RequeueAfter: min(interval, notFoundRetry)}, nil
	}
	c, err := r.aggregate(m)
	if err != nil {
		// The spec must change before anything can work: no retry.
		r.Coordinator.SetError(key, m.Generation, err)
		return ctrl.Result{}, nil
	}
	if c.broken != nil {
		r.Coordinator.SetError(key, m.Generation, c.broken)
		return ctrl.Result{}, nil
	}
	agg := c.agg
	changed := false
	start := time.Now()
	mapping, objs, err := r.read(ctx, conn, m, interval)
	switch {
	case errors.Is(err, access.ErrPending):
		// The Checker sends the metric back once its access is decided.
		return ctrl.Result{RequeueAfter: interval}, nil
	case errors.Is(err, clusters.ErrBusy):
		// Its cluster, or its access's namespace, has its share of the
		// workers already.
		return ctrl.Result{RequeueAfter: busyRetry()}, nil
	case err == nil:
		changed, err = replace(key, c, objs)
		ctrl.LoggerFrom(ctx).V(1).Info("Metric polled", "metric", key.String(), "cluster", conn.Name,
			"resource", mapping.Resource.GroupResource().String(), "namespace", m.Spec.Namespace,
			"objects", len(objs), "changed", changed, "duration", time.Since(start).String())
	}
	if c.broken != nil {
		r.Coordinator.SetError(key, m.Generation, c.broken)
		return ctrl.Result{}, nil
	}
	if err != nil {
		if !reason.Is(err) {
			return ctrl.Result{}, err
		}
		r.Coordinator.SetError(key, m.Generation, err)
		return ctrl.Result{RequeueAfter: min(interval, notFoundRetry)}, nil
	}
	if err := agg.Err(); err != nil {
		// Over its limits: the next poll tries again from scratch.
		r.Coordinator.SetError(key, m.Generation, err)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	// Series carry the kind as the API server names it, however the spec
	// wrote it (pod, Pods), as event-driven ones do.
	m.Spec.Target.Kind = mapping.GroupVersionKind.Kind
	if !r.publish(r.update(m, agg, interval, conn.Name), changed) {
		// The metric is still registered for events: the event-driven
		// reconciler drops it soon, then polling takes over.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

// read resolves the metric's target on conn's cluster, checks that the
// metric may read it there, and lists it. A remote cluster is read through
// its gate within pollDeadline (clusters.Set.Read), so that one that hangs
// holds this worker no longer than that, and not at all while it is in
// back-off; its own RBAC decides what its identity may read. The local
// cluster is read as it always was.
func (r *MetricReconciler) read(ctx context.Context, conn *clusters.Connection, m *v1alpha1.Metric, interval time.Duration) (
	*meta.RESTMapping, []map[string]any, error) {
	if conn.Remote {
		var mapping *meta.RESTMapping
		var objs []map[string]any
		err := boundedRead(ctx, r.Clusters, conn, pollDeadline(interval), func(ctx context.Context) error {
			mp, err := conn.Lister.Mapping(m.Spec.Target.GVK())
			if err != nil {
				return err
			}
			list, err := conn.Lister.List(ctx, mp, m.Spec.Namespace, m.Spec.LabelSelector)
			mapping, objs = mp, list
			return err
		})
		if err != nil {
			return nil, nil, err
		}
		return mapping, objs, nil
	}
	mapping, err := conn.Lister.Mapping(m.Spec.Target.GVK())
	if err != nil {
		return nil, nil, err
	}
	if err := r.Access.Authorize(ctx, accessRequest(m, mapping.Resource, scopeNamespace(mapping, m.Spec.Namespace))); err != nil {
		return nil, nil, err
	}
	objs, err := conn.Lister.List(ctx, mapping, m.Spec.Namespace, m.Spec.LabelSelector)
	return mapping, objs, err
}

// remove drops everything of a metric that is gone or that another
// replica serves.
func (r *MetricReconciler) remove(key coordinator.Key) {
	name := types.NamespacedName{Namespace: key.Namespace, Name: key.Name}
	r.forget(name)
	releaseConnection(r.Clusters, pollUser(key))
	r.Access.Forget(metricKind, name)
	r.Coordinator.Remove(key)
	released(r.Shard, pollingHolder, key)
}

// replace evaluates a poll's objects; between polls the aggregate keeps
// only the series (Aggregate.Poll), so a tenant's polling metrics cost
// memory by their series, not by the objects they read. A panic in
// evaluation marks the compiled spec broken: the metric reports it and is
// not evaluated again until its spec changes.
func replace(key coordinator.Key, c *compiled, objs []map[string]any) (changed bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.broken = events.PanicError(key.String(), "poll", p)
			changed, err = false, nil
		}
	}()
	return c.agg.Poll(objs), nil
}

// publish hands the poll's result to the coordinator unless the metric
// is registered for events, atomically with that check: a poll that was
// under way when the metric switched to event-driven mode must not
// overwrite (and freeze) the event-driven series.
func (r *MetricReconciler) publish(u coordinator.Update, changed bool) bool {
	if r.Registry == nil {
		r.Coordinator.Publish(u, changed)
		return true
	}
	return r.Registry.UnlessRegistered(u.Key.String(), func() { r.Coordinator.Publish(u, changed) })
}

// aggregate returns the metric's compiled aggregate, compiling the spec
// only when its generation changed.
func (r *MetricReconciler) aggregate(m *v1alpha1.Metric) (*compiled, error) {
	name := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.aggregates[name]; ok && c.generation == m.Generation {
		return c, nil
	}
	if c, ok := r.aggregates[name]; ok {
		c.agg.Close() // gives its series back to the budget
		delete(r.aggregates, name)
	}
	e, err := r.Guard.CompileMetric(m)
	if err != nil {
		return nil, err
	}
	if r.aggregates == nil {
		r.aggregates = map[types.NamespacedName]*compiled{}
	}
	c := &compiled{generation: m.Generation, agg: r.Guard.Aggregate(m.Namespace, e, m.Spec.MaxSeries)}
	r.aggregates[name] = c
	return c, nil
}

func (r *MetricReconciler) forget(name types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.aggregates[name]; ok {
		c.agg.Close() // gives its series back to the budget
		delete(r.aggregates, name)
	}
}

func (r *MetricReconciler) update(m *v1alpha1.Metric, agg *evaluation.Aggregate, interval time.Duration, cluster string) coordinator.Update {
	return metricUpdate(m, v1alpha1.ModePolling, interval, r.DefaultSink,
		coordinator.AggregateSource{Cluster: cluster, Aggregate: agg}, agg.Evaluator())
}

// pollUser names a polling metric as a user of a cluster connection.
func pollUser(key coordinator.Key) string { return "poll/" + key.String() }

// SetupWithManager registers the reconciler. Status patches do not change
// the generation, so the operator's own writes never trigger a reconcile;
// annotation changes do, because the event-driven annotation lives there.
func (r *MetricReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Metric{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Named("metric").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)})
	if r.Access != nil {
		// A granted or revoked access takes effect without waiting for
		// the next interval.
		b = b.WatchesRawSource(r.Access.Source(metricKind))
	}
	if r.Clusters != nil {
		b = b.WatchesRawSource(clusterSource(r.Clusters, mgr.GetClient()))
	}
	if r.Shard != nil {
		b = b.WatchesRawSource(shardSource(r.Shard, pollingHolder, metricKind, mgr.GetClient(), func() client.ObjectList { return &v1alpha1.MetricList{} }))
	}
	return b.Complete(r)
}
