package informers

import (
	"context"
	"math"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/watchlist"
)

// NewCacheInformer is controller-runtime's cache.Options.NewInformer for
// the manager's own informers (Metrics, DataSinks, ...): a shared index
// informer whose LISTs and WATCHes the API server refused are retried
// every second at most (RetryRefused), so that
//
//   - after an API server restart, edits of the operator's own objects
//     are seen within a couple of seconds, not after client-go's default
//     backoff, which grows to 30 s, jittered up to 60 s, over a few
//     restarts;
//   - the informer stops as soon as it is asked to: client-go's
//     Reflector sleeps its backoff after a failed streaming list
//     (watch-list) without watching its stop channel, which held the
//     operator's shutdown past the manager's 30 s grace period when it
//     came during an outage.
func NewCacheInformer(lw cache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers cache.Indexers) cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(RetryRefused(lw), obj, resync, indexers)
}

// RetryRefused wraps lw: a LIST or WATCH that the API server refused
// (connection refused, 429 Too Many Requests: what the Reflector itself
// would retry) is tried again here with refusedBackoff until it
// succeeds or its context ends, which returns the context's error. The
// Reflector never sees the refusal, so its own backoff, with its
// uninterruptible sleep, is not used for it.
func RetryRefused(lw cache.ListerWatcher) cache.ListerWatcher {
	return retryRefused{inner: cache.ToListerWatcherWithContext(lw), lw: lw}
}

type retryRefused struct {
	inner cache.ListerWatcherWithContext
	lw    cache.ListerWatcher
}

func (r retryRefused) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	return retrying(ctx, func() (runtime.Object, error) { return r.inner.ListWithContext(ctx, opts) })
}

func (r retryRefused) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return retrying(ctx, func() (watch.Interface, error) { return r.inner.WatchWithContext(ctx, opts) })
}

// List and Watch serve callers without a context (the Reflector uses the
// context variants): they are not retried, as nothing could stop them.
func (r retryRefused) List(opts metav1.ListOptions) (runtime.Object, error) {
	return r.inner.ListWithContext(context.Background(), opts)
}

func (r retryRefused) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return r.inner.WatchWithContext(context.Background(), opts)
}

// IsWatchListSemanticsUnSupported keeps what the wrapped ListerWatcher
// says about streaming lists.
func (r retryRefused) IsWatchListSemanticsUnSupported() bool {
	return watchlist.DoesClientNotSupportWatchListSemantics(r.lw)
}

// isRefusal reports whether the API server refused a request in a way
// worth retrying at once: it is not there (restarting) or it sheds load.
func isRefusal(err error) bool {
	return utilnet.IsConnectionRefused(err) || apierrors.IsTooManyRequests(err)
}

// refusedBackoff is RetryRefused's wait between two tries. A refused
// connection costs the API server nothing and the manager's cache has a
// handful of informers, so a try every second is cheap; with it an edit
// made while the API server was down is seen about a second after it
// answers.
var refusedBackoff = wait.Backoff{
	Duration: 100 * time.Millisecond,
	Factor:   2,
	Jitter:   0.25,
	Steps:    math.MaxInt32,
	Cap:      time.Second,
}

func retrying[T any](ctx context.Context, call func() (T, error)) (T, error) {
	b := refusedBackoff
	for {
		v, err := call()
		if err == nil || !isRefusal(err) {
			return v, err
		}
		t := time.NewTimer(b.Step())
		select {
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, ctx.Err()
		case <-t.C:
		}
	}
}
