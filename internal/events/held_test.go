package events

import (
	"fmt"
	"testing"

	"github.com/SAP/metrics-operator/internal/registry"
)

// TestHeldCountsHeldObjects: Held counts the objects some metric of the
// watch holds, whether a list or events brought them, and Upsert returns
// that count; deletions of objects the watch never held do not lower it,
// and Drop empties the watch and its metrics without telling them.
func TestHeldCountsHeldObjects(t *testing.T) {
	reg := registry.New()
	h := &Handler{Registry: reg}
	a, aRec := subscribe(t, reg, "a")
	b, _ := subscribe(t, reg, "b")
	objs := make([]map[string]any, 0, 10)
	for i := range 10 {
		objs = append(objs, obj(fmt.Sprint("listed-", i)))
	}
	h.Replace(fuzzKey, objs)
	if n := h.Held(fuzzKey); n != 10 {
		t.Fatalf("Held = %d after a list of 10, want 10", n)
	}
	for i := range 5 {
		if n := h.Upsert(fuzzKey, obj(fmt.Sprint("added-", i))); n != 11+i {
			t.Fatalf("Upsert of a new object returned %d, want %d", n, 11+i)
		}
		h.Delete(fuzzKey, obj(fmt.Sprint("never-sent-", i)))
	}
	if n := h.Upsert(fuzzKey, obj("added-0")); n != 15 {
		t.Fatalf("Upsert of a held object returned %d, want 15", n)
	}
	if n := h.Held(fuzzKey); n != 15 {
		t.Fatalf("Held = %d after 5 adds and 5 deletions of unknown objects, want 15", n)
	}
	h.Delete(fuzzKey, obj("added-0"))
	if n := h.Held(fuzzKey); n != 14 {
		t.Fatalf("Held = %d after deleting a held object, want 14", n)
	}
	changed := aRec.changed
	h.Drop(fuzzKey)
	if n, la, lb := h.Held(fuzzKey), a.Aggregate.Len(), b.Aggregate.Len(); n != 0 || la != 0 || lb != 0 {
		t.Fatalf("after Drop: Held %d, metrics hold %d and %d; want 0", n, la, lb)
	}
	if aRec.changed != changed {
		t.Errorf("Drop told a metric of a change")
	}
}
