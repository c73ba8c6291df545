package controllers

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
)

// ManagedMetricStatusWriter records the coordinator's view of a
// ManagedMetric in its status, with a merge patch, and emits an event when
// Ready transitions. status.observation.resources is the number of
// managed resources over all series and kinds.
type ManagedMetricStatusWriter struct {
	Client   client.Client
	Recorder events.EventRecorder
}

var _ coordinator.StatusWriter = (*ManagedMetricStatusWriter)(nil)

// WriteStatus patches the ManagedMetric's status; one that is gone is fine.
func (w *ManagedMetricStatusWriter) WriteStatus(ctx context.Context, key coordinator.Key, s coordinator.Status) error {
	m := &v1alpha1.ManagedMetric{}
	st := &m.Status
	return writeStatus(ctx, w.Client, w.Recorder, key, s, m, statusFields{common: &st.CommonStatus, mode: &st.Mode, ready: &st.Ready},
		func() {
			if s.Observed {
				st.Observation = v1alpha1.ManagedObservation{
					Timestamp: metav1.NewTime(s.Timestamp),
					Resources: s.Total,
					Series:    int32(min(s.Series, 1<<31-1)),
				}
			}
		})
}
