package federation

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/SAP/metrics-operator/internal/informers"
)

// WatchKey names one discovery watch.
type WatchKey struct {
	GVR schema.GroupVersionResource
	// Namespace is the namespace watched; "" watches all.
	Namespace string
	// LabelSelector is applied by the API server.
	LabelSelector string
}

// Watches runs the discovery watches. It is a manager Runnable: watches
// asked for before Start begin with it, and all stop with its context.
type Watches struct {
	client dynamic.Interface

	mu      sync.Mutex
	ctx     context.Context
	watches map[WatchKey]*watch
	// users maps each user to the watch it holds; a user holds one.
	users map[string]WatchKey
}

type watch struct {
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
	started  bool
	users    map[string]func()
	// notify calls every user's onChange.
	notify func()
	// lastErr is the last error of the watch's list or watch, until it
	// syncs.
	lastErr atomic.Pointer[error]
}

// NewWatches returns Watches reading the local cluster through client.
func NewWatches(client dynamic.Interface) *Watches {
	return &Watches{client: client, watches: map[WatchKey]*watch{}, users: map[string]WatchKey{}}
}

// NeedLeaderElection is true: only the leader discovers clusters.
func (w *Watches) NeedLeaderElection() bool { return true }

// Start starts the watches asked for so far and blocks until ctx is done,
// then stops them all.
func (w *Watches) Start(ctx context.Context) error {
	w.mu.Lock()
	w.ctx = ctx
	for _, wt := range w.watches {
		w.startLocked(wt)
	}
	w.mu.Unlock()
	<-ctx.Done()
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, wt := range w.watches {
		wt.cancel()
		delete(w.watches, k)
	}
	w.users = map[string]WatchKey{}
	return nil
}

// Ensure makes user a user of the watch key, starting it if it is the
// first, and releases the watch user held before, if another. onChange is
// called, without blocking the watch for long, after every change of its
// objects and once it has synced.
func (w *Watches) Ensure(user string, key WatchKey, onChange func()) {
	w.mu.Lock()
	prev, held := w.users[user]
	if held && prev != key {
		w.releaseLocked(user, prev)
	}
	wt := w.watches[key]
	if wt == nil {
		wt = w.newWatch(key)
		w.watches[key] = wt
		if w.ctx != nil {
			w.startLocked(wt)
		}
	}
	wt.users[user] = onChange
	w.users[user] = key
	w.mu.Unlock()
}

// Release stops user's use of its watch; the last user's release stops it.
func (w *Watches) Release(user string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if key, ok := w.users[user]; ok {
		w.releaseLocked(user, key)
	}
}

func (w *Watches) releaseLocked(user string, key WatchKey) {
	delete(w.users, user)
	wt := w.watches[key]
	if wt == nil {
		return
	}
	delete(wt.users, user)
	if len(wt.users) == 0 {
		wt.cancel()
		delete(w.watches, key)
	}
}

// ErrNotSynced is returned by Objects until the watch has listed its
// objects once.
var ErrNotSynced = errors.New("the discovery watch has not listed its objects yet")

// NotSyncedError is returned by Objects when the watch has not listed its
// objects yet and its last attempt failed; it matches ErrNotSynced.
type NotSyncedError struct {
	// Err is the API server's answer.
	Err error
}

func (e *NotSyncedError) Error() string { return ErrNotSynced.Error() + ": " + e.Err.Error() }

// Unwrap returns ErrNotSynced and the cause.
func (e *NotSyncedError) Unwrap() []error { return []error{ErrNotSynced, e.Err} }

// Objects returns the current objects of the watch user holds, from the
// watch's store; they must not be modified.
func (w *Watches) Objects(user string) ([]*unstructured.Unstructured, error) {
	w.mu.Lock()
	key, ok := w.users[user]
	wt := w.watches[key]
	w.mu.Unlock()
	if !ok || wt == nil {
		return nil, ErrNotSynced
	}
	if !wt.informer.HasSynced() {
		if err := wt.lastErr.Load(); err != nil {
			return nil, &NotSyncedError{Err: *err}
		}
		return nil, ErrNotSynced
	}
	items := wt.informer.GetStore().List()
	out := make([]*unstructured.Unstructured, 0, len(items))
	for _, it := range items {
		if u, ok := it.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// Active returns the keys of the running watches.
func (w *Watches) Active() []WatchKey {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]WatchKey, 0, len(w.watches))
	for k, wt := range w.watches {
		if wt.started {
			out = append(out, k)
		}
	}
	return out
}

func (w *Watches) newWatch(key WatchKey) *watch {
	sel := key.LabelSelector
	inf := informers.NewDynamicInformer(w.client, key.GVR, key.Namespace,
		func(o *metav1.ListOptions) { o.LabelSelector = sel })
	wt := &watch{informer: inf, cancel: func() {}, users: map[string]func(){}}
	notify := func() {
		w.mu.Lock()
		fs := make([]func(), 0, len(wt.users))
		for _, f := range wt.users {
			fs = append(fs, f)
		}
		w.mu.Unlock()
		for _, f := range fs {
			f()
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	})
	wt.notify = notify
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		if !inf.HasSynced() {
			first := wt.lastErr.Swap(&err) == nil
			if first {
				// Its users report it rather than wait for the sync.
				notify()
			}
		}
	})
	return wt
}

func (w *Watches) startLocked(wt *watch) {
	if wt.started {
		return
	}
	ctx, cancel := context.WithCancel(w.ctx)
	wt.cancel, wt.started = cancel, true
	go wt.informer.RunWithContext(ctx)
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), wt.informer.HasSynced) {
			wt.notify()
		}
	}()
}
