package controllers

import (
	"context"
	"errors"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/reason"
)

// poll reads every part of a polling ManagedMetric once, through its
// cluster's connection, and publishes the result.
func (r *ManagedMetricReconciler) poll(ctx context.Context, m *v1alpha1.ManagedMetric, conn *clusters.Connection,
	src *managedSource, fresh bool) (ctrl.Result, error) {
	changed, retry, err := r.reader().poll(ctx, src, r.Clusters, conn, m.Spec.LabelSelector, managedInterval(m))
	if errors.Is(err, clusters.ErrBusy) {
		// Its cluster, or its access's namespace, has its share of the
		// workers already.
		return ctrl.Result{RequeueAfter: retry}, nil
	}
	if err != nil {
		if !reason.Is(err) {
			return ctrl.Result{}, err
		}
		r.Coordinator.SetError(src.update.Key, m.Generation, err)
		return ctrl.Result{RequeueAfter: retry}, nil
	}
	r.Coordinator.Publish(src.update, changed || fresh)
	return ctrl.Result{RequeueAfter: retry}, nil
}
