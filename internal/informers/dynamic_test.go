package informers

import (
	"context"
	"net"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// TestDynamicInformerStopsWhileRefused runs a NewDynamicInformer against
// an address where nothing listens (every LIST and WATCH refused, as
// during an API server outage) long enough for client-go's backoff to
// grow past several seconds, then stops it: it must return at once.
//
// With dynamicinformer's informer, whose Reflector streams its list,
// both failed: the Reflector retried the refused streaming list within
// itself, so the watch error handler never heard of it (the managed
// kinds' watch of a remote cluster could not report it unreachable),
// and it slept its backoff without watching its stop channel (stopping
// took 11 s here; the operator's shutdown during an outage hung on the
// managed kinds' CRD watch in CI).
func TestDynamicInformerStopsWhileRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	client, err := dynamic.NewForConfig(&rest.Config{Host: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	inf := NewDynamicInformer(client, gvr, "", nil)
	failures := make(chan struct{}, 100)
	if err := inf.SetWatchErrorHandlerWithContext(func(context.Context, *cache.Reflector, error) {
		select {
		case failures <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		inf.RunWithContext(ctx)
		close(done)
	}()
	// Refusals reach the watch error handler, which the helper watches
	// use to report an unreachable cluster.
	select {
	case <-failures:
	case <-time.After(10 * time.Second):
		t.Fatal("no refused LIST reached the watch error handler in 10 s")
	}
	// client-go's backoff: 0.8 s doubling, jittered; after 15 s of
	// refusals its next wait is several seconds.
	time.Sleep(15 * time.Second)
	stopping := time.Now()
	cancel()
	select {
	case <-done:
		t.Logf("stopped %s after its context ended", time.Since(stopping).Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Fatal("the informer did not stop within 1 s of its context ending while its API server refused connections")
	}
}
