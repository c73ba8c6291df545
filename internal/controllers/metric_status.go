package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
)

// MetricStatusWriter records the coordinator's view of a Metric in its
// status and emits an event when Ready transitions. See statusWrites for
// how a write needs no read from the API server.
type MetricStatusWriter struct {
	// Client reads the Metric from the informer cache and patches its
	// status on the API server: the manager's client does both.
	Client   client.Client
	Recorder events.EventRecorder

	statusWrites
}

var (
	_ coordinator.StatusWriter    = (*MetricStatusWriter)(nil)
	_ coordinator.StatusForgetter = (*MetricStatusWriter)(nil)
)

// WriteStatus writes the Metric's status; a Metric that is gone is fine.
func (w *MetricStatusWriter) WriteStatus(ctx context.Context, key coordinator.Key, s coordinator.Status) error {
	m := &v1alpha1.Metric{}
	st := &m.Status
	return w.write(ctx, w.Client, w.Recorder, key, s, m, statusFields{common: &st.CommonStatus, mode: &st.Mode, ready: &st.Ready, status: st},
		func() {
			if s.Observed {
				st.Observation = v1alpha1.Observation{
					Timestamp:   stamp(s.Timestamp),
					LatestValue: strconv.FormatInt(s.Total, 10),
					Dimensions:  s.Dimensions,
					Series:      int32(min(s.Series, 1<<31-1)),
				}
			}
		})
}

// WatchStatus tells overwritten of the Metrics whose stored status another
// writer changed or whose object was replaced by one of the same name, so
// that the status is written again (Coordinator.StatusOverwritten).
func (w *MetricStatusWriter) WatchStatus(ctx context.Context, informers cache.Informers, overwritten func(coordinator.Key, bool)) error {
	return w.watchStatus(ctx, informers, &v1alpha1.Metric{}, metricKind,
		func(o client.Object) any { return &o.(*v1alpha1.Metric).Status }, overwritten)
}

// statusFields are the status fields every metric kind shares.
type statusFields struct {
	common *v1alpha1.CommonStatus
	mode   *v1alpha1.UpdateMode
	ready  *string
	// status is the whole status struct (a pointer to it), as written.
	status any
}

// statusWrites remembers, per metric, the object as this process last
// wrote its status (the API server's reply to the patch), so that a
// status write needs no GET: it starts from whichever is newer by
// resourceVersion, that object or the informer cache's copy. The cache
// alone lags the process's own writes by the time their echo takes (a
// Ready condition that flips twice within that time would keep a wrong
// lastTransitionTime and miss an event); the remembered object alone
// would never see another writer (an older replica during a handover,
// `kubectl edit` of the status) nor a Metric deleted and created again
// under the same name, whose cached copy has another UID. The write
// replaces the whole status (a JSON patch that first tests the UID), so
// no field depends on a diff against what the server holds, and it is
// made only when it changes what the newer copy shows.
type statusWrites struct {
	mu   sync.Mutex
	last map[coordinator.Key]client.Object
}

// ForgetStatus drops what was remembered of a metric that is gone.
func (w *statusWrites) ForgetStatus(key coordinator.Key) {
	w.mu.Lock()
	delete(w.last, key)
	w.mu.Unlock()
}

// newer returns the object as last written when it is newer than cached,
// a copy of the same object (same UID) the cache has not caught up with.
func (w *statusWrites) newer(key coordinator.Key, cached client.Object) client.Object {
	w.mu.Lock()
	defer w.mu.Unlock()
	last := w.last[key]
	if last == nil {
		return nil
	}
	if last.GetUID() != cached.GetUID() {
		delete(w.last, key) // another object of the same name
		return nil
	}
	// resourceVersions are etcd revisions, comparable since Kubernetes
	// 1.34; should one not parse, the own write is the better guess (the
	// cache lags it far more often than another writer follows it).
	if cmp, err := resourceversion.CompareResourceVersion(cached.GetResourceVersion(), last.GetResourceVersion()); err == nil && cmp >= 0 {
		return nil
	}
	return last
}

func (w *statusWrites) remember(key coordinator.Key, obj client.Object) {
	obj.SetManagedFields(nil) // not compared, and the larger part of the object
	w.mu.Lock()
	if w.last == nil {
		w.last = map[coordinator.Key]client.Object{}
	}
	w.last[key] = obj
	w.mu.Unlock()
}

// watchStatus follows the informer of obj's kind and tells overwritten of
// the metrics whose stored status is not the one this process last wrote:
// an object replaced by one of the same name (another UID), or a newer
// object whose status differs (another writer). The process's own echoes
// cost a map lookup; metrics it never wrote are left alone.
func (w *statusWrites) watchStatus(ctx context.Context, informers cache.Informers, obj client.Object, kind string,
	statusOf func(client.Object) any, overwritten func(coordinator.Key, bool)) error {
	inf, err := informers.GetInformer(ctx, obj)
	if err != nil {
		return fmt.Errorf("watching %s status: %w", kind, err)
	}
	echo := func(o any) {
		if obj, ok := o.(client.Object); ok {
			w.echo(coordinator.Key{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}, obj, statusOf, overwritten)
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { echo(o) },
		UpdateFunc: func(_, o any) { echo(o) },
	}); err != nil {
		return fmt.Errorf("watching %s status: %w", kind, err)
	}
	return nil
}

func (w *statusWrites) echo(key coordinator.Key, obj client.Object, statusOf func(client.Object) any, overwritten func(coordinator.Key, bool)) {
	w.mu.Lock()
	last := w.last[key]
	w.mu.Unlock()
	if last == nil || last.GetResourceVersion() == obj.GetResourceVersion() {
		return
	}
	if last.GetUID() != obj.GetUID() {
		overwritten(key, true)
		return
	}
	if cmp, err := resourceversion.CompareResourceVersion(obj.GetResourceVersion(), last.GetResourceVersion()); err != nil || cmp <= 0 {
		return // an echo of an older write
	}
	if !equality.Semantic.DeepEqual(statusOf(obj), statusOf(last)) {
		overwritten(key, false)
	}
}

// write is a metric kind's WriteStatus: it reads obj (whose status f
// points into) from the informer cache, takes the object as last written
// instead when that is newer, records s in the shared fields, lets own
// record the kind's own fields, and writes the status unless that
// changes nothing.
func (w *statusWrites) write(ctx context.Context, c client.Client, rec events.EventRecorder, key coordinator.Key, s coordinator.Status,
	obj client.Object, f statusFields, own func()) error {
	if err := c.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			w.ForgetStatus(key)
			return nil
		}
		return fmt.Errorf("reading %s: %w", key, err)
	}
	if last := w.newer(key, obj); last != nil {
		reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(last.DeepCopyObject()).Elem())
	}
	before := obj.DeepCopyObject()
	f.common.ObservedGeneration = s.Generation
	if s.Mode != "" {
		*f.mode = s.Mode
	}
	own()
	*f.ready = string(s.Ready.Status)
	ready := s.Ready
	ready.LastTransitionTime = stamp(time.Now()) // used only if the status changes
	transition := setCondition(&f.common.Conditions, ready)
	if equality.Semantic.DeepEqual(before, obj) {
		return nil
	}
	patch, err := statusPatch(obj.GetUID(), f.status)
	if err != nil {
		return err
	}
	// The reply is asked for as metadata only: the status is what was
	// sent (the schema defaults nothing in it), and decoding the whole
	// object cost as much as the rest of the write.
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return fmt.Errorf("patching the status of %s: %w", key, err)
	}
	reply := &metav1.PartialObjectMetadata{}
	reply.SetGroupVersionKind(gvk)
	reply.SetNamespace(obj.GetNamespace())
	reply.SetName(obj.GetName())
	if err := c.Status().Patch(ctx, reply, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) {
			w.ForgetStatus(key)
			return nil
		}
		// A failed UID test (422) means the cached copy is of an object
		// deleted since: the retry finds the new one in the cache.
		return fmt.Errorf("patching the status of %s: %w", key, err)
	}
	obj.SetResourceVersion(reply.GetResourceVersion())
	obj.SetGeneration(reply.GetGeneration())
	w.remember(key, obj)
	if transition && rec != nil {
		typ := corev1.EventTypeNormal
		if s.Ready.Status != metav1.ConditionTrue {
			typ = corev1.EventTypeWarning
		}
		rec.Eventf(obj, nil, typ, s.Ready.Reason, "Evaluate", "%s", eventMessage(f.common.Conditions, s.Ready))
	}
	return nil
}

// jsonPatchOp is one operation of a JSON patch (RFC 6902).
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// statusPatch replaces the whole status of the object with uid, and of no
// other: a merge patch would merge nested objects with what the server
// holds (so a field left out would keep its old value unless the patch
// named it null, which takes a diff against the stored object to know),
// while this needs nothing read. The conditions are the whole list, as
// every patch of a CRD's list writes it.
func statusPatch(uid types.UID, status any) ([]byte, error) {
	b, err := json.Marshal([]jsonPatchOp{
		{Op: "test", Path: "/metadata/uid", Value: uid},
		{Op: "add", Path: "/status", Value: status},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the status patch: %w", err)
	}
	return b, nil
}

// stamp is t as the API server stores it (whole seconds), so that a
// status compares equal to its stored copy.
func stamp(t time.Time) metav1.Time {
	return metav1.NewTime(t.Truncate(time.Second))
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
