package controllers

import (
	"context"

	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
)

// ManagedMetricStatusWriter records the coordinator's view of a
// ManagedMetric in its status, as MetricStatusWriter does, and emits an
// event when Ready transitions. status.observation.resources is the
// number of managed resources over all series and kinds.
type ManagedMetricStatusWriter struct {
	// Client reads from the informer cache and patches the status.
	Client   client.Client
	Recorder events.EventRecorder

	statusWrites
}

var _ coordinator.StatusWriter = (*ManagedMetricStatusWriter)(nil)

// WriteStatus writes the ManagedMetric's status; one that is gone is fine.
func (w *ManagedMetricStatusWriter) WriteStatus(ctx context.Context, key coordinator.Key, s coordinator.Status) error {
	m := &v1alpha1.ManagedMetric{}
	st := &m.Status
	return w.write(ctx, w.Client, w.Recorder, key, s, m, statusFields{common: &st.CommonStatus, mode: &st.Mode, ready: &st.Ready, status: st},
		func() {
			if s.Observed {
				st.Observation = v1alpha1.ManagedObservation{
					Timestamp: stamp(s.Timestamp),
					Resources: s.Total,
					Series:    int32(min(s.Series, 1<<31-1)),
				}
			}
		})
}

// WatchStatus is MetricStatusWriter.WatchStatus for ManagedMetrics.
func (w *ManagedMetricStatusWriter) WatchStatus(ctx context.Context, informers cache.Informers, overwritten func(coordinator.Key, bool)) error {
	return w.watchStatus(ctx, informers, &v1alpha1.ManagedMetric{}, managedMetricKind,
		func(o client.Object) any { return &o.(*v1alpha1.ManagedMetric).Status }, overwritten)
}
