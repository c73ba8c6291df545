package informers_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestMetricsRegisteredWhileTheFirstListRuns registers two metrics on a
// watch halfway through its first (streamed) list, as happens to metrics
// created just after the operator started, or settled only after
// internal/startup's gate opened: that list cannot give them the objects
// it passed before they came, so they are filled by one LIST pass made
// for both together once it ends, and then all three hold every object.
// Metrics present at start are registered before the list begins and
// cost no second pass (TestRegisteredHoldsWatchesBack; in
// internal/operator, TestStartListsEachWatchOnce).
func TestMetricsRegisteredWhileTheFirstListRuns(t *testing.T) {
	testenv.Require(t, env)
	const ns, objects, page = "join-first-list", 250, 100
	createConfigMaps(t, ns, objects)
	m, reg, requests := countedManager(t, informers.Options{ListPageSize: page})

	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	key := registry.InformerKey{Cluster: "local", GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: ns}
	subscribe := func(id string) (*registry.Subscription, chan struct{}, error) {
		synced := make(chan struct{})
		sub := &registry.Subscription{ID: id, Aggregate: evaluation.NewAggregate(e), MetadataOnly: true,
			OnSynced: func() { close(synced) }, OnError: func(err error) { t.Errorf("%s: watch failed: %v", id, err) }}
		reg.Register(key, sub)
		return sub, synced, m.Ensure(key, gvk, sub)
	}

	type late struct {
		sub    *registry.Subscription
		synced chan struct{}
	}
	var (
		seen   atomic.Int32
		once   sync.Once
		joined = make(chan []late, 1)
	)
	events.SetTestHook(func(id string, _ map[string]any) {
		if id != "first" || seen.Add(1) != objects/2 {
			return
		}
		once.Do(func() {
			var ls []late
			for i := range 2 {
				sub, synced, err := subscribe(fmt.Sprint("late-", i))
				if err != nil {
					t.Errorf("late-%d: %v", i, err)
				}
				ls = append(ls, late{sub, synced})
			}
			joined <- ls
		})
	})
	defer events.SetTestHook(nil)
	first, synced, err := subscribe("first")
	if err != nil {
		t.Fatal(err)
	}
	wait := func(what string, ch chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s was not filled within 30s", what)
		}
	}
	wait("the first metric", synced)
	var ls []late
	select {
	case ls = <-joined:
	case <-time.After(30 * time.Second):
		t.Fatal("the first list never reached its middle")
	}
	for i, l := range ls {
		wait(fmt.Sprint("late-", i), l.synced)
	}
	for _, s := range append([]*registry.Subscription{first}, ls[0].sub, ls[1].sub) {
		if n := s.Aggregate.Len(); n != objects {
			t.Errorf("%s holds %d objects, want %d", s.ID, n, objects)
		}
	}
	path := "/api/v1/namespaces/" + ns + "/configmaps"
	streams, pages := requests.Count("WATCHLIST", path), requests.Count("LIST", path)
	t.Logf("streamed lists %d, LIST pages %d (%d objects, pages of %d)", streams, pages, objects, page)
	if streams != 1 || pages < 1 || pages > objects/page+1 {
		t.Errorf("%d streamed lists and %d LIST pages: want the first list streamed and one LIST pass (at most %d pages) for both late metrics",
			streams, pages, objects/page+1)
	}
}
