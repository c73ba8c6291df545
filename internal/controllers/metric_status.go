package controllers

import (
	"context"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
)

// MetricStatusWriter records the coordinator's view of a Metric in its
// status, with a merge patch, and emits an event when Ready transitions.
type MetricStatusWriter struct {
	Client   client.Client
	Recorder events.EventRecorder
}

var _ coordinator.StatusWriter = (*MetricStatusWriter)(nil)

// WriteStatus patches the Metric's status; a Metric that is gone is fine.
func (w *MetricStatusWriter) WriteStatus(ctx context.Context, key coordinator.Key, s coordinator.Status) error {
	m := &v1alpha1.Metric{}
	return writeStatus(ctx, w.Client, w.Recorder, key, s, m, statusFields{common: &m.Status.CommonStatus, mode: &m.Status.Mode, ready: &m.Status.Ready},
		func() {
			if s.Observed {
				m.Status.Observation = v1alpha1.Observation{
					Timestamp:   metav1.NewTime(s.Timestamp),
					LatestValue: strconv.FormatInt(s.Total, 10),
					Dimensions:  s.Dimensions,
					Series:      int32(min(s.Series, 1<<31-1)),
				}
			}
		})
}

// statusFields are the status fields every metric kind shares.
type statusFields struct {
	common *v1alpha1.CommonStatus
	mode   *v1alpha1.UpdateMode
	ready  *string
	// patchAll, if set, changes the copy the status is diffed against, so
	// that fields it sets are in every patch: a merge patch leaves out what
	// is equal before and after, and a zero count never written shows as
	// blank in kubectl's columns.
	patchAll func(before client.Object)
}

// writeStatus is a metric kind's WriteStatus: it reads obj (whose status
// f points into), records s in the shared fields, lets own record the
// kind's own fields, and patches the status.
func writeStatus(ctx context.Context, c client.Client, rec events.EventRecorder, key coordinator.Key, s coordinator.Status,
	obj client.Object, f statusFields, own func()) error {
	if err := c.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	before := obj.DeepCopyObject().(client.Object)
	f.common.ObservedGeneration = s.Generation
	if s.Mode != "" {
		*f.mode = s.Mode
	}
	own()
	*f.ready = string(s.Ready.Status)
	transition := setCondition(&f.common.Conditions, s.Ready)
	unchanged := equality.Semantic.DeepEqual(before, obj)
	if f.patchAll != nil {
		f.patchAll(before)
	}
	return patchStatus(ctx, c, rec, obj, before, unchanged, transition, f.common.Conditions, s.Ready)
}

// patchStatus merge-patches obj's status, which the caller changed from
// before, unless unchanged; an object that is gone is fine. A Ready
// transition is recorded as an event, Warning unless it is to True.
func patchStatus(ctx context.Context, c client.Client, rec events.EventRecorder, obj, before client.Object,
	unchanged, transition bool, conds []metav1.Condition, ready metav1.Condition) error {
	if unchanged {
		return nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil {
		return client.IgnoreNotFound(err)
	}
	if transition && rec != nil {
		typ := corev1.EventTypeNormal
		if ready.Status != metav1.ConditionTrue {
			typ = corev1.EventTypeWarning
		}
		rec.Eventf(obj, nil, typ, ready.Reason, "Evaluate", "%s", eventMessage(conds, ready))
	}
	return nil
}

// eventMessage is the event text for a Ready transition to c. An export
// failure may quote the sink's reply, which belongs at most in status as a
// short excerpt, never in an event (events are broadcast to whoever may
// list them in the namespace, and kept apart from the Metric).
func eventMessage(conds []metav1.Condition, c metav1.Condition) string {
	if c.Reason == v1alpha1.ReasonExportFailed {
		return "pushing to the DataSink failed; the Ready condition in status says why"
	}
	if stored := meta.FindStatusCondition(conds, c.Type); stored != nil {
		return stored.Message // capped by setCondition
	}
	return c.Message
}
