package managed

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/reason"
)

// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Watcher keeps the managed resource kinds of one cluster current from one
// watch on CustomResourceDefinitions, shared by every ManagedMetric that
// reads the cluster. It is a manager Runnable.
type Watcher struct {
	cluster string
	dyn     dynamic.Interface
	// remote is set for a remote cluster's Watcher (see Watchers): its
	// errors name the remote cluster's RBAC, not the operator's.
	remote bool
	// onChange, if set, is called after the subscribers were told.
	onChange func()

	mu     sync.RWMutex
	kinds  map[string]Kind // by CRD name
	subs   []chan event.GenericEvent
	synced atomic.Bool
	// err is why the first list has not succeeded yet.
	err atomic.Pointer[error]
}

var (
	_ manager.Runnable               = (*Watcher)(nil)
	_ manager.LeaderElectionRunnable = (*Watcher)(nil)
)

// NewWatcher returns a Watcher of the cluster dyn reaches; cluster names it
// in logs. Start it (or add it to a manager) to fill it.
func NewWatcher(cluster string, dyn dynamic.Interface) *Watcher {
	return &Watcher{cluster: cluster, dyn: dyn, kinds: map[string]Kind{}}
}

// NeedLeaderElection is true: only the leader reads managed resources.
func (w *Watcher) NeedLeaderElection() bool { return true }

// Start runs the watch until ctx is done.
func (w *Watcher) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithValues("cluster", w.cluster)
	inf := informers.NewDynamicInformer(w.dyn, crdResource, metav1.NamespaceAll, nil)
	if err := inf.SetTransform(strip); err != nil {
		return fmt.Errorf("watching CustomResourceDefinitions: %w", err)
	}
	if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		w.err.Store(&err)
		cache.DefaultWatchErrorHandler(ctx, r, err)
	}); err != nil {
		return fmt.Errorf("watching CustomResourceDefinitions: %w", err)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.set(obj) },
		UpdateFunc: func(_, obj any) { w.set(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if crd, ok := obj.(*unstructured.Unstructured); ok {
				w.remove(crd.GetName())
			}
		},
	}); err != nil {
		return fmt.Errorf("watching CustomResourceDefinitions: %w", err)
	}
	log.Info("Watching CustomResourceDefinitions for managed resource kinds")
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			w.synced.Store(true)
			w.notify()
			log.Info("Managed resource kinds synced", "kinds", len(w.Kinds()))
		}
	}()
	inf.RunWithContext(ctx)
	kindsGauge.DeleteLabelValues(w.cluster)
	return nil
}

// Synced reports whether the watch has listed the cluster's CRDs once:
// before, Kinds is not the whole truth.
func (w *Watcher) Synced() bool { return w.synced.Load() }

// Err returns why the watch has not synced yet, as a reason error
// (Forbidden when the operator may not list and watch CRDs or its
// credentials are refused, EndpointNotAllowed when the allow-list refuses
// the dial, else ClusterUnreachable: clusterfault.Classify), or nil when
// it synced or has not failed.
func (w *Watcher) Err() error {
	p := w.err.Load()
	if w.Synced() || p == nil {
		return nil
	}
	if apierrors.IsForbidden(*p) && w.remote {
		return reason.ForbiddenRemoteTarget(crdResource.GroupResource(), "list", "watch")
	}
	if apierrors.IsForbidden(*p) {
		return reason.ForbiddenTarget(crdResource.GroupResource(), "list", "watch")
	}
	if fault := clusterfault.Classify(*p); reason.Of(fault, "") != v1alpha1.ReasonClusterUnreachable {
		return fault // refused credentials, or an endpoint the allow-list refuses
	}
	return reason.New(v1alpha1.ReasonClusterUnreachable,
		"the managed resource kinds cannot be read yet: listing CustomResourceDefinitions failed; retrying")
}

// Kinds returns the managed kinds the cluster serves, sorted by group and
// kind.
func (w *Watcher) Kinds() []Kind {
	w.mu.RLock()
	out := make([]Kind, 0, len(w.kinds))
	for _, k := range w.kinds {
		out = append(out, k)
	}
	w.mu.RUnlock()
	slices.SortFunc(out, func(a, b Kind) int {
		if c := strings.Compare(a.GroupKind.Group, b.GroupKind.Group); c != 0 {
			return c
		}
		return strings.Compare(a.GroupKind.Kind, b.GroupKind.Kind)
	})
	return out
}

// Subscribe returns a channel that receives an event whenever the set of
// managed kinds (or how one is served) changes, and once the watch has
// synced. Events are coalesced: a reader that is behind gets one. The
// event's object only names the cluster.
func (w *Watcher) Subscribe() <-chan event.GenericEvent {
	ch := make(chan event.GenericEvent, 1)
	w.mu.Lock()
	w.subs = append(w.subs, ch)
	w.mu.Unlock()
	return ch
}

func (w *Watcher) set(obj any) {
	crd, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	k, managed := kindOf(crd)
	name := crd.GetName()
	w.mu.Lock()
	old, had := w.kinds[name]
	switch {
	case managed && had && old.equal(k), !managed && !had:
		w.mu.Unlock()
		return
	case managed:
		w.kinds[name] = k
	default:
		delete(w.kinds, name)
	}
	w.mu.Unlock()
	w.notify()
}

func (w *Watcher) remove(name string) {
	w.mu.Lock()
	_, had := w.kinds[name]
	delete(w.kinds, name)
	w.mu.Unlock()
	if had {
		w.notify()
	}
}

// notify tells every subscriber, without blocking: a full channel already
// holds an event that makes its reader look again.
func (w *Watcher) notify() {
	if !w.synced.Load() {
		return // the sync itself notifies once
	}
	ev := event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: w.cluster}}}
	w.mu.RLock()
	kindsGauge.WithLabelValues(w.cluster).Set(float64(len(w.kinds)))
	for _, ch := range w.subs {
		select {
		case ch <- ev:
		default:
		}
	}
	w.mu.RUnlock()
	if w.onChange != nil {
		w.onChange()
	}
}
