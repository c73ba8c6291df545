package controllers_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// createConfigMaps creates n small ConfigMaps with several writers.
func createConfigMaps(t *testing.T, ns string, n int) {
	t.Helper()
	const writers = 16
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if err := env.Client.Create(t.Context(), configMap(ns, "cm-"+strconv.Itoa(i), nil)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// familyOnMetrics reports whether /metrics has family.
func familyOnMetrics(t *testing.T, family string) bool {
	t.Helper()
	fams, err := scrape.Families(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	_, ok := fams[family]
	return ok
}

// tracked returns metrics_operator_tracked_metrics by mode.
func tracked(t *testing.T) (eventDriven, polling float64) {
	t.Helper()
	return selfMetric(t, "metrics_operator_tracked_metrics", "mode", string(v1alpha1.ModeEventDriven)),
		selfMetric(t, "metrics_operator_tracked_metrics", "mode", string(v1alpha1.ModePolling))
}

// TestNoGhostAfterDeleteRenameOrSwitchDuringJoinList deletes an event-driven
// metric, renames another and switches a third to polling, while the
// LIST that fills it on joining a running watch reads 20,000 ConfigMaps. Nothing the LIST does
// after that may publish the metric again: its family is gone within 2 s
// of the delete and stays gone, the OTLP receiver gets no point of it
// after the delete, and metrics_operator_tracked_metrics is back at its
// baseline.
func TestNoGhostAfterDeleteRenameOrSwitchDuringJoinList(t *testing.T) {
	testenv.Require(t, env)
	if testing.Short() {
		t.Skip("creates 20,000 ConfigMaps")
	}
	ctx := t.Context()
	ns := "ed-ghost"
	createNamespace(t, ns)
	sink := otlpsink.Start(t)
	create(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "collector", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})
	const objects = 20000
	start := time.Now()
	createConfigMaps(t, ns, objects)
	t.Logf("created %d ConfigMaps in %v", objects, time.Since(start).Round(time.Millisecond))

	spec := func(name string) v1alpha1.MetricSpec {
		return v1alpha1.MetricSpec{Name: name, Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Namespace: ns, DataSinkRef: &v1alpha1.DataSinkReference{Name: "collector"}}
	}
	all := fmt.Sprintf("{cluster=local,kind=ConfigMap,version=v1} %d", objects)
	// The anchor keeps the watch running, so the metrics below join it.
	create(t, eventDriven(ns, "anchor", spec("ghost_anchor")))
	waitSamplesWithin(t, 120*time.Second, "ghost_anchor", all)
	baseEvents, basePolling := tracked(t)
	path := "/api/v1/namespaces/" + ns + "/configmaps"

	// joinListing creates m and returns once the LIST filling it runs.
	joinListing := func(t *testing.T, m *v1alpha1.Metric) int {
		t.Helper()
		lists := requests.Count("LIST", path)
		create(t, m)
		testenv.Eventually(t, 30*time.Second, func() error {
			if requests.Count("LIST", path) == lists {
				return fmt.Errorf("no LIST for the joining metric yet")
			}
			return nil
		})
		return requests.Count("LIST", path)
	}
	// listDone waits until no page was read for a second.
	listDone := func(t *testing.T) int {
		t.Helper()
		n := requests.Count("LIST", path)
		for {
			time.Sleep(time.Second)
			m := requests.Count("LIST", path)
			if m == n {
				return n
			}
			n = m
		}
	}
	// noGhost checks, until the LIST is over and 3 s more, that family
	// never comes back, then that the receiver got no point of it after
	// it left /metrics (and a push already under way then landed), and
	// that the tracked metrics are at their baseline.
	noGhost := func(t *testing.T, family string, deleted time.Time) {
		t.Helper()
		waitFamilyGone(t, 2*time.Second-time.Since(deleted), family)
		t.Logf("%s gone from /metrics %v after the delete", family, time.Since(deleted).Round(time.Millisecond))
		time.Sleep(500 * time.Millisecond)
		pointsAtDelete := pointsOf(sink, family)
		done := make(chan int)
		go func() { done <- listDone(t) }()
		var pages int
	watch:
		for {
			select {
			case pages = <-done:
				break watch
			case <-time.After(50 * time.Millisecond):
				if familyOnMetrics(t, family) {
					t.Fatalf("%s came back on /metrics after its metric was deleted", family)
				}
			}
		}
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			if familyOnMetrics(t, family) {
				t.Fatalf("%s came back on /metrics after its metric was deleted", family)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := pointsOf(sink, family); n != pointsAtDelete {
			t.Fatalf("the receiver got %d points of %s after its metric was deleted", n-pointsAtDelete, family)
		}
		testenv.Eventually(t, 2*time.Second, func() error {
			if e, p := tracked(t); e != baseEvents || p != basePolling {
				return fmt.Errorf("tracked metrics event-driven=%v polling=%v, baseline %v and %v", e, p, baseEvents, basePolling)
			}
			return nil
		})
		t.Logf("LIST pages read in all: %d", pages)
	}

	t.Run("delete", func(t *testing.T) {
		m := eventDriven(ns, "deleted", spec("ghost_deleted"))
		pages := joinListing(t, m)
		if err := env.Client.Delete(ctx, m); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		noGhost(t, "ghost_deleted", deleted)
		if requests.Count("LIST", path) <= pages {
			t.Logf("the LIST ended before the delete reached the operator: the race was not exercised")
		}
	})

	t.Run("rename", func(t *testing.T) {
		m := eventDriven(ns, "renamed", spec("ghost_old_name"))
		joinListing(t, m)
		testenv.Update(t, env.Client, m, func() { m.Spec.Name = "ghost_new_name" })
		// The LIST made for the old spec ends meanwhile; the old name must
		// never be published, the new one must.
		stop := make(chan struct{})
		seen := make(chan bool, 1)
		go func() {
			for {
				select {
				case <-stop:
					seen <- false
					return
				case <-time.After(50 * time.Millisecond):
				}
				if fams, err := scrape.Families(metricsURL); err == nil {
					if _, ok := fams["ghost_old_name"]; ok {
						seen <- true
						return
					}
				}
			}
		}()
		waitSamplesWithin(t, 60*time.Second, "ghost_new_name", all)
		listDone(t)
		time.Sleep(time.Second)
		close(stop)
		if <-seen {
			t.Fatal("the old name was published after the rename")
		}
		if e, p := tracked(t); e != baseEvents+1 || p != basePolling {
			t.Fatalf("tracked metrics event-driven=%v polling=%v, want %v and %v", e, p, baseEvents+1, basePolling)
		}
		if err := env.Client.Delete(context.WithoutCancel(ctx), m); err != nil {
			t.Fatal(err)
		}
		noGhost(t, "ghost_new_name", time.Now())
	})

	t.Run("switch to polling", func(t *testing.T) {
		m := eventDriven(ns, "switched", spec("ghost_switched"))
		joinListing(t, m)
		testenv.Update(t, env.Client, m, func() {
			m.Annotations = map[string]string{v1alpha1.EventDrivenAnnotation: "false"}
		})
		// Polling takes over; the LIST of the dropped subscription ends
		// and must not publish it as event-driven again.
		waitSamplesWithin(t, pollTimeout, "ghost_switched", all)
		listDone(t)
		time.Sleep(time.Second)
		if err := env.Client.Get(ctx, key(ns, "switched"), m); err != nil {
			t.Fatal(err)
		}
		if m.Status.Mode != v1alpha1.ModePolling {
			t.Fatalf("status.mode = %q after the switch, want Polling", m.Status.Mode)
		}
		if e, p := tracked(t); e != baseEvents || p != basePolling+1 {
			t.Fatalf("tracked metrics event-driven=%v polling=%v, want %v and %v", e, p, baseEvents, basePolling+1)
		}
		if err := env.Client.Delete(context.WithoutCancel(ctx), m); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		noGhost(t, "ghost_switched", deleted)
	})
}
