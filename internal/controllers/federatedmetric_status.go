package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
	// Observe returns the metric's cluster counts; false keeps the last
	// ones written (the metric failed as a whole, or is gone).
	Observe func(coordinator.Key) (v1alpha1.FederatedObservation, bool)
}

var _ coordinator.StatusWriter = (*FederatedMetricStatusWriter)(nil)

// WriteStatus patches the FederatedMetric's status; one that is gone is
// fine.
func (w *FederatedMetricStatusWriter) WriteStatus(ctx context.Context, key coordinator.Key, s coordinator.Status) error {
	m := &v1alpha1.FederatedMetric{}
	if err := w.Client.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, m); err != nil {
		return client.IgnoreNotFound(err)
	}
	before := m.DeepCopy()
	st := &m.Status
	st.ObservedGeneration = s.Generation
	if s.Mode != "" {
		st.Mode = s.Mode
	}
	if w.Observe != nil {
		if o, ok := w.Observe(key); ok {
			st.Observation = o
		}
	}
	if s.Observed {
		t := metav1.NewTime(s.Timestamp)
		st.LastReconcileTime = &t
	}
	st.Ready = string(s.Ready.Status)
	transition := setCondition(&st.Conditions, s.Ready)
	return patchStatus(ctx, w.Client, w.Recorder, m, before,
		equality.Semantic.DeepEqual(before.Status, m.Status), transition, st.Conditions, s.Ready)
}
