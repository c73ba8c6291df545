package informers

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// TestRetryRefused checks the retry policy of RetryRefused on its own
// (the reliability suite runs it against a real API server): refusals
// are retried with refusedBackoff (0.1 s doubling to 1 s) until the call succeeds,
// other errors pass through at once, and a cancelled context ends the
// retries with the context's error, which the Reflector does not retry.
func TestRetryRefused(t *testing.T) {
	gone := apierrors.NewResourceExpired("too old resource version")
	busy := apierrors.NewTooManyRequests("storage is (re)initializing", 1)
	tests := []struct {
		name      string
		errs      []error // returned by the calls in turn; then success
		cancelAt  time.Duration
		wantErr   error
		wantCalls int
		maxTime   time.Duration
	}{
		{"success at once", nil, 0, nil, 1, 0},
		{"connection refused, then success", []error{refused, refused, refused}, 0, nil, 4, time.Second},
		{"429, then success", []error{busy}, 0, nil, 2, time.Second},
		{"other errors pass through", []error{gone}, 0, gone, 1, 0},
		{"cancelled while refused", []error{refused, refused, refused, refused, refused, refused, refused, refused, refused},
			3 * time.Second, context.Canceled, 0, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				calls := 0
				next := func() error {
					calls++
					if calls <= len(tt.errs) {
						return tt.errs[calls-1]
					}
					return nil
				}
				lw := RetryRefused(&cache.ListWatch{
					ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
						return &metav1.List{}, next()
					},
					WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
						return watch.NewEmptyWatch(), next()
					},
				}).(cache.ListerWatcherWithContext)
				for _, call := range []struct {
					verb string
					do   func(context.Context) error
				}{
					{"list", func(ctx context.Context) error { _, err := lw.ListWithContext(ctx, metav1.ListOptions{}); return err }},
					{"watch", func(ctx context.Context) error { _, err := lw.WatchWithContext(ctx, metav1.ListOptions{}); return err }},
				} {
					calls = 0
					ctx, cancel := context.WithCancel(t.Context())
					if tt.cancelAt > 0 {
						time.AfterFunc(tt.cancelAt, cancel)
					}
					start := time.Now()
					err := call.do(ctx)
					took := time.Since(start)
					cancel()
					if !errors.Is(err, tt.wantErr) {
						t.Errorf("%s: error %v, want %v", call.verb, err, tt.wantErr)
					}
					if tt.wantCalls > 0 && calls != tt.wantCalls {
						t.Errorf("%s: %d calls, want %d", call.verb, calls, tt.wantCalls)
					}
					if took > tt.maxTime {
						t.Errorf("%s: returned after %s, want within %s", call.verb, took, tt.maxTime)
					}
				}
			})
		})
	}
}

// The wrapper keeps what the wrapped ListerWatcher says about streaming
// lists.
func TestRetryRefusedKeepsWatchListSemantics(t *testing.T) {
	lw := RetryRefused(unsupportedWatchList{&cache.ListWatch{}})
	if u, ok := lw.(interface{ IsWatchListSemanticsUnSupported() bool }); !ok || !u.IsWatchListSemanticsUnSupported() {
		t.Error("RetryRefused lost IsWatchListSemanticsUnSupported")
	}
}

type unsupportedWatchList struct{ *cache.ListWatch }

func (unsupportedWatchList) IsWatchListSemanticsUnSupported() bool { return true }
