package informers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/transport"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestStreamedList checks how a watch reads its objects: as one list
// streamed from the API server's watch cache (a watch with
// sendInitialEvents) rather than LIST pages, and that the watch then
// resumes from the end of that list without missing a change. Against a
// server that refuses streamed lists (as one older than Kubernetes 1.27,
// or with the WatchList feature off, answers 422 Invalid) it lists page
// by page instead.
func TestStreamedList(t *testing.T) {
	testenv.Require(t, env)
	const ns, objects, page = "streamed-list", 250, 100
	createConfigMaps(t, ns, objects)
	path := "/api/v1/namespaces/" + ns + "/configmaps"

	run := func(t *testing.T, refuse bool) *testenv.RequestCounter {
		var wraps []transport.WrapperFunc
		if refuse {
			wraps = append(wraps, refuseStreamedLists)
		}
		m, reg, requests := countedManager(t, informers.Options{ListPageSize: page}, wraps...)
		e, err := evaluation.Compile(evaluation.Spec{})
		if err != nil {
			t.Fatal(err)
		}
		synced := make(chan struct{})
		sub := &registry.Subscription{ID: "m", Aggregate: evaluation.NewAggregate(e),
			OnSynced: func() { close(synced) }, OnError: func(err error) { t.Errorf("watch failed: %v", err) }}
		key := registry.InformerKey{Cluster: "local", GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: ns}
		reg.Register(key, sub)
		if err := m.Ensure(key, schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, sub); err != nil {
			t.Fatal(err)
		}
		select {
		case <-synced:
		case <-time.After(30 * time.Second):
			t.Fatal("the watch did not sync within 30s")
		}
		if n := sub.Aggregate.Len(); n != objects {
			t.Errorf("the metric holds %d objects after the list, want %d", n, objects)
		}
		// The watch goes on from the list's end: a ConfigMap created now
		// is seen.
		name := fmt.Sprintf("late-%t", refuse)
		if err := env.Client.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = env.Client.Delete(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
		})
		testenv.Eventually(t, 30*time.Second, func() error {
			if n := sub.Aggregate.Len(); n != objects+1 {
				return fmt.Errorf("the metric holds %d objects, want %d after a create", n, objects+1)
			}
			return nil
		})
		return requests
	}

	t.Run("streamed", func(t *testing.T) {
		requests := run(t, false)
		if n := requests.Count("WATCHLIST", path); n != 1 {
			t.Errorf("%d streamed lists, want 1", n)
		}
		if n := requests.Count("LIST", path); n != 0 {
			t.Errorf("%d LIST pages, want 0 (the list is streamed)", n)
		}
	})
	t.Run("refused", func(t *testing.T) {
		requests := run(t, true)
		if n := requests.Count("WATCHLIST", path); n != 1 {
			t.Errorf("%d streamed lists tried, want 1 (then pages)", n)
		}
		if n, want := requests.Count("LIST", path), objects/page+1; n != want {
			t.Errorf("%d LIST pages, want %d (%d objects in pages of %d)", n, want, objects, page)
		}
	})
}

// refuseStreamedLists answers a watch with sendInitialEvents as an API
// server without streamed lists does: 422 Invalid.
func refuseStreamedLists(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.URL.Query().Get("sendInitialEvents") != "true" {
			return rt.RoundTrip(r)
		}
		body := `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Invalid","code":422,` +
			`"message":"ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"}`
		return &http.Response{StatusCode: http.StatusUnprocessableEntity, Status: "422 Unprocessable Entity", Request: r,
			Header: http.Header{"Content-Type": []string{"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
