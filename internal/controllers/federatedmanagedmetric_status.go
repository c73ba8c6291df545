package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
)

// FederatedManagedMetricStatusWriter records the coordinator's view of a
// FederatedManagedMetric in its status, as MetricStatusWriter does, and
// emits an event when Ready transitions. status.observation counts the clusters as
// they stand when the status is written, and the resources counted on the
// active ones; a withdrawn metric keeps its last resources total.
type FederatedManagedMetricStatusWriter struct {
	// Client reads from the informer cache and patches the status.
	Client   client.Client
	Recorder events.EventRecorder
	// Clusters returns a metric's clusters, counted by phase
	// (FederatedManagedMetricReconciler.Observation).
	Clusters func(types.NamespacedName) v1alpha1.FederatedObservation

	statusWrites
}

var _ coordinator.StatusWriter = (*FederatedManagedMetricStatusWriter)(nil)

// WriteStatus writes the metric's status; one that is gone is fine.
func (w *FederatedManagedMetricStatusWriter) WriteStatus(ctx context.Context, key coordinator.Key, s coordinator.Status) error {
	f := &v1alpha1.FederatedManagedMetric{}
	st := &f.Status
	return w.write(ctx, w.Client, w.Recorder, key, s, f, statusFields{common: &st.CommonStatus, mode: &st.Mode, ready: &st.Ready, status: st},
		func() {
			st.Observation.FederatedObservation = w.Clusters(types.NamespacedName{Namespace: key.Namespace, Name: key.Name})
			if s.Observed {
				st.Observation.Resources = s.Total
				t := stamp(s.Timestamp)
				st.LastReconcileTime = &t
			}
		})
}

// WatchStatus is MetricStatusWriter.WatchStatus for FederatedManagedMetrics.
func (w *FederatedManagedMetricStatusWriter) WatchStatus(ctx context.Context, informers cache.Informers, overwritten func(coordinator.Key, bool)) error {
	return w.watchStatus(ctx, informers, &v1alpha1.FederatedManagedMetric{}, federatedManagedMetricKind,
		func(o client.Object) any { return &o.(*v1alpha1.FederatedManagedMetric).Status }, overwritten)
}
