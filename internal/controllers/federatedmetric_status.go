package controllers

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
)

// FederatedMetricStatusWriter records the coordinator's view of a
// FederatedMetric in its status, with a merge patch, and emits an event
// when Ready transitions. status.observation counts the metric's clusters
// by state, as Observe reports them.
type FederatedMetricStatusWriter struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Observe returns the metric's cluster counts.
	Observe func(coordinator.Key) v1alpha1.FederatedObservation
}

var _ coordinator.StatusWriter = (*FederatedMetricStatusWriter)(nil)

// WriteStatus patches the FederatedMetric's status; one that is gone is
// fine.
func (w *FederatedMetricStatusWriter) WriteStatus(ctx context.Context, key coordinator.Key, s coordinator.Status) error {
	m := &v1alpha1.FederatedMetric{}
	st := &m.Status
	return writeStatus(ctx, w.Client, w.Recorder, key, s, m, statusFields{common: &st.CommonStatus, mode: &st.Mode, ready: &st.Ready,
		patchAll: func(before client.Object) {
			before.(*v1alpha1.FederatedMetric).Status.Observation = v1alpha1.FederatedObservation{ActiveCount: -1, FailedCount: -1, PendingCount: -1}
		}}, func() {
		if w.Observe != nil {
			st.Observation = w.Observe(key)
		}
		if s.Observed {
			t := metav1.NewTime(s.Timestamp)
			st.LastReconcileTime = &t
		}
	})
}
