package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/reason"
)

// dataSinkSecretIndex indexes DataSinks by the Secrets they reference.
const dataSinkSecretIndex = "spec.secretNames"

// DataSinkReconciler resolves DataSinks and their Secrets, publishes the
// result to the datasink.Store the exporters read, and reports it in the
// Ready condition.
type DataSinkReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Store    *datasink.Store
	// OnChange, if set, is told about every DataSink whose resolution
	// changed, so metrics pushing to it retry at once, and about every
	// DataSink deleted, so its exporter and connections are closed (the
	// coordinator's SinkChanged does both).
	OnChange func(types.NamespacedName)
}

// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=datasinks,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=datasinks/status,verbs=get;patch;update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile resolves one DataSink.
func (r *DataSinkReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ds := &v1alpha1.DataSink{}
	if err := r.Client.Get(ctx, req.NamespacedName, ds); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone from the store, the sink's exporter is closed on the
			// change notification.
			r.Store.Delete(req.NamespacedName)
			r.changed(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}

	target, err := datasink.Resolve(ctx, r.Client, ds)
	if err != nil && !reason.Is(err) {
		// The API server failed us; keep the last good resolution.
		return ctrl.Result{}, err
	}
	r.Store.Set(req.NamespacedName, target, err)
	r.changed(req.NamespacedName)

	before := ds.DeepCopy()
	ds.Status.ObservedGeneration = ds.Generation
	if target != nil {
		ds.Status.Protocol = string(target.Protocol)
	}
	cond := readyCondition(ds.Generation, err, v1alpha1.ReasonInvalidEndpoint)
	if err == nil {
		cond.Message = "endpoint and secrets resolve"
	}
	if setCondition(&ds.Status.Conditions, cond) {
		r.event(ds, cond.Reason, cond.Message, err != nil)
	}
	if err := r.Client.Status().Patch(ctx, ds, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// A configuration error waits for the user (or a Secret event): no
	// retry loop.
	return ctrl.Result{}, nil
}

func (r *DataSinkReconciler) changed(key types.NamespacedName) {
	if r.OnChange != nil {
		r.OnChange(key)
	}
}

func (r *DataSinkReconciler) event(ds *v1alpha1.DataSink, reason, msg string, warning bool) {
	if r.Recorder == nil {
		return
	}
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(ds, nil, typ, reason, "Resolve", "%s", msg)
}

// SetupWithManager registers the reconciler; it watches the Secrets that
// DataSinks reference so a Secret appearing, changing or disappearing
// takes effect at once.
func (r *DataSinkReconciler) SetupWithManager(mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.DataSink{}, dataSinkSecretIndex,
		func(o client.Object) []string { return datasink.SecretNames(o.(*v1alpha1.DataSink)) })
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.DataSink{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Metadata is enough to know a Secret changed; caching Secrets whole
		// would keep every credential of the cluster in memory.
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.sinksForSecret)).
		Named("datasink").
		Complete(r)
}

func (r *DataSinkReconciler) sinksForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.DataSinkList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{dataSinkSecretIndex: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing DataSinks for Secret failed", "secret", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{
			Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}})
	}
	return reqs
}
