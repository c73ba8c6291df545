package events

import (
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
)

type recorded struct {
	synced, changed int
	errs            []error
}

func subscribe(t *testing.T, reg *registry.Registry, id string) (*registry.Subscription, *recorded) {
	t.Helper()
	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorded{}
	s := &registry.Subscription{ID: id, Aggregate: evaluation.NewAggregate(e),
		OnSynced: func() { rec.synced++ },
		OnChange: func() { rec.changed++ },
		OnError:  func(err error) { rec.errs = append(rec.errs, err) }}
	reg.Register(fuzzKey, s)
	return s, rec
}

func obj(name string) map[string]any {
	return map[string]any{"metadata": map[string]any{"name": name, "namespace": "ns", "uid": name}}
}

// TestPanicDisablesOnlyItsMetric makes one metric's evaluation panic on
// each path (event, relist, fill of a joining metric): that metric is
// disabled once with InvalidProjection and told nothing more, the other
// metric on the watch goes on.
func TestPanicDisablesOnlyItsMetric(t *testing.T) {
	for _, path := range []string{"upsert", "relist", "join"} {
		t.Run(path, func(t *testing.T) {
			reg := registry.New()
			h := &Handler{Registry: reg}
			good, goodRec := subscribe(t, reg, "good")
			bad, badRec := subscribe(t, reg, "bad")
			SetTestHook(func(id string, o map[string]any) {
				if id == "bad" && evaluation.UID(o) == "boom" {
					panic([]int{}[0:0:0][0]) // a runtime error, as an evaluator bug would be
				}
			})
			t.Cleanup(func() { SetTestHook(nil) })

			switch path {
			case "upsert":
				h.Replace(fuzzKey, []map[string]any{obj("a")})
				h.Upsert(fuzzKey, obj("boom"))
			case "relist":
				h.Replace(fuzzKey, []map[string]any{obj("a"), obj("boom")})
			case "join":
				h.Replace(fuzzKey, nil)
				bad.Unsync() // as if it joined after the watch synced
				r := h.BeginRelist(fuzzKey, []*registry.Subscription{bad})
				r.Add(obj("boom"))
				r.Finish()
			}
			if bad.Active() || len(badRec.errs) != 1 || reason.Of(badRec.errs[0], "") != v1alpha1.ReasonInvalidProjection {
				t.Fatalf("bad: active=%v errors=%v; want disabled with InvalidProjection", bad.Active(), badRec.errs)
			}
			if path == "join" && badRec.synced != 1 {
				t.Fatalf("bad was published %d times, want once (before it joined again)", badRec.synced)
			}
			before := *badRec
			h.Upsert(fuzzKey, obj("c"))
			h.Delete(fuzzKey, obj("c"))
			h.Replace(fuzzKey, []map[string]any{obj("a"), obj("d")})
			h.Fail(fuzzKey, reason.New(v1alpha1.ReasonTargetNotFound, "gone"))
			if badRec.changed != before.changed || badRec.synced != before.synced || len(badRec.errs) != 1 {
				t.Fatalf("a disabled metric was told more: %+v, was %+v", *badRec, before)
			}
			if !good.Active() || goodRec.changed == 0 || len(goodRec.errs) != 1 {
				t.Fatalf("good: active=%v %+v; want it to go on", good.Active(), *goodRec)
			}
		})
	}
}
