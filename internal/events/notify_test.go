package events

import (
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/registry"
)

// TestNotifyDelayGathersChanges sends a burst of events with a
// NotifyDelay: the metrics reading a changed state are told once, after
// the delay, however many events changed it, and their series hold every
// event; a metric that goes over its limits and leaves the state it
// shared is told at once. Later events are told after their own delay to
// metrics not told lately, and ten delays after the last telling to the
// others.
func TestNotifyDelayGathersChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 50 * time.Millisecond
		reg := registry.New()
		h := &Handler{Registry: reg, NotifyDelay: delay}
		all, err := evaluation.Compile(evaluation.Spec{})
		if err != nil {
			t.Fatal(err)
		}
		byName, err := evaluation.Compile(evaluation.Spec{Projections: []v1alpha1.Projection{{Name: "name", FieldPath: "metadata.name"}}})
		if err != nil {
			t.Fatal(err)
		}
		// Metrics are told on the handler's timer goroutine: the counts
		// are read through a lock (synctest orders the two, the race
		// detector does not see it).
		var mu sync.Mutex
		counts := map[string]int{}
		tells := func() map[string]int {
			mu.Lock()
			defer mu.Unlock()
			return maps.Clone(counts)
		}
		sub := func(id string, e *evaluation.Evaluator, limits evaluation.Limits) *registry.Subscription {
			s := &registry.Subscription{ID: id, Aggregate: evaluation.NewLimitedAggregate(e, limits),
				OnChange: func() { mu.Lock(); counts[id]++; mu.Unlock() }}
			reg.Register(fuzzKey, s)
			return s
		}
		a, _ := sub("a", all, evaluation.Limits{}), sub("b", all, evaluation.Limits{})
		d := sub("d", byName, evaluation.Limits{})
		sub("limited", byName, evaluation.Limits{MaxSeries: 1})
		onlyX, err := evaluation.Compile(evaluation.Spec{FieldSelector: "metadata.name=x1"})
		if err != nil {
			t.Fatal(err)
		}
		sub("x", onlyX, evaluation.Limits{})
		h.Replace(fuzzKey, []map[string]any{obj("o0")})

		for i := 1; i <= 10; i++ {
			h.Upsert(fuzzKey, obj("o"+string(rune('0'+i))))
		}
		if changed := tells(); changed["a"] != 0 || changed["b"] != 0 || changed["d"] != 0 {
			t.Fatalf("metrics told before the delay: %v", changed)
		}
		if n := tells()["limited"]; n != 1 {
			t.Fatalf("the metric over its limits was told %d times at once, want 1", n)
		}
		time.Sleep(delay)
		synctest.Wait()
		changed := tells()
		for _, id := range []string{"a", "b", "d"} {
			if changed[id] != 1 {
				t.Errorf("%s told %d times of 10 events, want once", id, changed[id])
			}
		}
		if got := len(d.Aggregate.Series()); got != 11 {
			t.Errorf("d has %d series, want 11", got)
		}
		if got := a.Aggregate.Series(); len(got) != 1 || got[0].Value != 11 {
			t.Errorf("a has %v, want one series of 11", got)
		}

		// Later events: a group told lately waits ten delays from its
		// last telling (it changes on, and its metrics' pushes and status
		// checks are queued already), while a group changed for the first
		// time since is told after the delay.
		h.Delete(fuzzKey, obj("o0"))
		h.Upsert(fuzzKey, obj("x1"))
		time.Sleep(delay)
		synctest.Wait()
		if changed := tells(); changed["x"] != 1 || changed["a"] != 1 || changed["d"] != 1 {
			t.Fatalf("one delay after the later events: %v, want x told once, a and d not again yet", changed)
		}
		time.Sleep(retellFactor*delay - 2*delay)
		synctest.Wait()
		if n := tells()["a"]; n != 1 {
			t.Fatalf("a told again before ten delays had passed since it was told")
		}
		time.Sleep(delay)
		synctest.Wait()
		if changed := tells(); changed["a"] != 2 || changed["b"] != 2 || changed["d"] != 2 || changed["x"] != 1 {
			t.Errorf("ten delays after the first telling: %v, want a, b and d told twice, x once", changed)
		}
		if got := a.Aggregate.Series(); len(got) != 1 || got[0].Value != 11 {
			t.Errorf("a has %v, want one series of 11 (o0 gone, x1 in)", got)
		}
	})
}
