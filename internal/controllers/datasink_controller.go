package controllers

import (
	"cmp"
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/reason"
)

// DataSinkReconciler resolves DataSinks and their Secrets, publishes the
// result to the datasink.Store the exporters read, and reports it in the
// Ready condition.
type DataSinkReconciler struct {
	Client client.Client
	// Shard, if set, decides whether this replica writes the status.
	Shard    Shard
	Recorder events.EventRecorder
	Store    *datasink.Store
	// OnChange, if set, is told about every DataSink whose resolution
	// changed, so metrics pushing to it retry at once, and about every
	// DataSink deleted, so its exporter and connections are closed (the
	// coordinator's SinkChanged does both).
	OnChange func(types.NamespacedName)
	// Egress decides which endpoints DataSinks may send to; nil admits any.
	Egress *datasink.Egress
	// Recheck is how often a DataSink is resolved again (zero: one
	// minute). Secrets are read, not watched: a watch needs list on every
	// Secret of the cluster, which would let the operator read them all.
	// So a Secret's change, like a change of the addresses an endpoint
	// resolves to, applies within this period.
	Recheck time.Duration
}

// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=datasinks,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=datasinks/status,verbs=get;patch;update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
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

	target, err := r.resolve(ctx, ds)
	if err != nil && !reason.Is(err) {
		// The API server failed us; keep the last good resolution.
		return ctrl.Result{}, err
	}
	if r.storeChanged(req.NamespacedName, target, err) {
		r.Store.Set(req.NamespacedName, target, err)
		r.changed(req.NamespacedName)
	}

	if !leads(r.Shard, "DataSink", req.NamespacedName) {
		// Every replica resolves the sink it pushes to; one writes status.
		return ctrl.Result{RequeueAfter: cmp.Or(r.Recheck, time.Minute)}, nil
	}
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
	if !equality.Semantic.DeepEqual(before.Status, ds.Status) {
		if err := r.Client.Status().Patch(ctx, ds, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	// A configuration error waits for the user, seen at the next recheck
	// or spec change: no retry loop.
	return ctrl.Result{RequeueAfter: cmp.Or(r.Recheck, time.Minute)}, nil
}

// resolve checks the endpoint against the egress rules before anything
// else, then reads the Secrets.
func (r *DataSinkReconciler) resolve(ctx context.Context, ds *v1alpha1.DataSink) (*datasink.Target, error) {
	allow, err := r.Egress.Check(ctx, ds.Spec.Connection.Endpoint)
	if err != nil {
		return nil, err
	}
	t, err := datasink.Resolve(ctx, r.Client, ds)
	if t != nil {
		t.AllowAddr = allow
	}
	return t, err
}

// storeChanged reports whether the resolution differs from the stored one,
// so that a periodic recheck which finds nothing new rebuilds no exporter
// and triggers no push.
func (r *DataSinkReconciler) storeChanged(key types.NamespacedName, t *datasink.Target, err error) bool {
	old, oldErr, found := r.Store.Get(key)
	switch {
	case !found, (old == nil) != (t == nil), (oldErr == nil) != (err == nil):
		return true
	case old != nil && old.Fingerprint != t.Fingerprint:
		return true
	}
	return err != nil && err.Error() != oldErr.Error()
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

// SetupWithManager registers the reconciler.
func (r *DataSinkReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.DataSink{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("datasink").
		Complete(r)
}
