package events

import (
	"fmt"
	"testing"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/registry"
)

// TestObjectIDsFollowTheObjects: the watch interns each object's UID as
// an ID that the states key their entries by. An ID freed by a deletion
// is given to the next new object, which must not inherit anything of
// the deleted one; an update moving an object between selectors moves
// it between the states under its ID; a relist drops what it does not
// name. Throughout, the watch holds an ID exactly for each object some
// metric holds.
func TestObjectIDsFollowTheObjects(t *testing.T) {
	reg := registry.New()
	h := &Handler{Registry: reg}
	metric := func(id, sel string) *registry.Subscription {
		e, err := evaluation.Compile(evaluation.Spec{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		s := &registry.Subscription{ID: id, Aggregate: evaluation.NewAggregate(e),
			OnError: func(err error) { t.Fatalf("%s failed: %v", id, err) }}
		reg.Register(fuzzKey, s)
		return s
	}
	a, b := metric("a", "team=a"), metric("b", "team=b")
	object := func(name, team string) map[string]any {
		return map[string]any{"metadata": map[string]any{"name": name, "namespace": "ns", "uid": name,
			"labels": map[string]any{"team": team}}}
	}
	h.Replace(fuzzKey, nil)
	w := h.watch(fuzzKey)
	expect := func(step string, wantA, wantB, wantHeld int) {
		t.Helper()
		if la, lb, held, ids := a.Aggregate.Len(), b.Aggregate.Len(), h.Held(fuzzKey), w.keys.Len(); la != wantA || lb != wantB ||
			held != wantHeld || ids != wantHeld {
			t.Fatalf("after %s: a holds %d, b %d, Held %d, IDs %d; want %d, %d, %d, %d",
				step, la, lb, held, ids, wantA, wantB, wantHeld, wantHeld)
		}
	}

	h.Upsert(fuzzKey, object("first", "a"))
	first, _ := w.keys.Lookup("first")
	h.Upsert(fuzzKey, object("other", "c")) // no metric wants it: no ID kept
	expect("two adds, one wanted", 1, 0, 1)
	h.Delete(fuzzKey, object("first", "a"))
	expect("its delete", 0, 0, 0)
	h.Upsert(fuzzKey, object("second", "b"))
	if id, _ := w.keys.Lookup("second"); id != first {
		t.Fatalf("the new object got ID %d, want the freed %d", id, first)
	}
	expect("a new object under the freed ID", 0, 1, 1)
	h.Upsert(fuzzKey, object("second", "a"))
	expect("a relabel from b to a", 1, 0, 1)
	h.Upsert(fuzzKey, object("second", "c"))
	expect("a relabel out of both", 0, 0, 0)
	h.Delete(fuzzKey, object("never-sent", "a"))
	expect("the delete of an unknown object", 0, 0, 0)

	var objs []map[string]any
	for i := range 6 {
		objs = append(objs, object(fmt.Sprint("listed-", i), []string{"a", "b", "c"}[i%3]))
	}
	h.Replace(fuzzKey, objs)
	expect("a relist", 2, 2, 4)
	h.Replace(fuzzKey, objs[:3])
	expect("a relist without half of them", 1, 1, 2)
	// A metric joining, filled alone, shares the IDs the watch has.
	c := metric("c", "team in (a,b)")
	r := h.BeginRelist(fuzzKey, []*registry.Subscription{c})
	for _, o := range objs[:3] {
		r.Add(o)
	}
	r.Finish()
	if c.Aggregate.Len() != 2 || w.keys.Len() != 2 {
		t.Fatalf("after a join: c holds %d, %d IDs; want 2 and 2", c.Aggregate.Len(), w.keys.Len())
	}
	h.Drop(fuzzKey)
	expect("Drop", 0, 0, 0)
}
