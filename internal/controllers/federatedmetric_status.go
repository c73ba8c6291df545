package controllers

import (
	"context"

	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
)

// FederatedMetricStatusWriter records the coordinator's view of a
// FederatedMetric in its status, as MetricStatusWriter does, and emits an
// event when Ready transitions. status.observation counts the metric's
// clusters by state, as Observe reports them.
type FederatedMetricStatusWriter struct {
	// Client reads from the informer cache and patches the status.
	Client   client.Client
	Recorder events.EventRecorder
	// Observe returns the metric's cluster counts.
	Observe func(coordinator.Key) v1alpha1.FederatedObservation

	statusWrites
}

var _ coordinator.StatusWriter = (*FederatedMetricStatusWriter)(nil)

// WriteStatus writes the FederatedMetric's status; one that is gone is
// fine.
func (w *FederatedMetricStatusWriter) WriteStatus(ctx context.Context, key coordinator.Key, s coordinator.Status) error {
	m := &v1alpha1.FederatedMetric{}
	st := &m.Status
	return w.write(ctx, w.Client, w.Recorder, key, s, m, statusFields{common: &st.CommonStatus, mode: &st.Mode, ready: &st.Ready, status: st},
		func() {
			if w.Observe != nil {
				st.Observation = w.Observe(key)
			}
			if s.Observed {
				t := stamp(s.Timestamp)
				st.LastReconcileTime = &t
			}
		})
}

// WatchStatus is MetricStatusWriter.WatchStatus for FederatedMetrics.
func (w *FederatedMetricStatusWriter) WatchStatus(ctx context.Context, informers cache.Informers, overwritten func(coordinator.Key, bool)) error {
	return w.watchStatus(ctx, informers, &v1alpha1.FederatedMetric{}, federatedMetricKind,
		func(o client.Object) any { return &o.(*v1alpha1.FederatedMetric).Status }, overwritten)
}
