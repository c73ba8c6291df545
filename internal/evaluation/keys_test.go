package evaluation

import (
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// TestKeysReuseReleasedIDs: an ID lives while references to it are held
// and is handed to the next new key after the last is released, so IDs
// stay as dense as the keys held.
func TestKeysReuseReleasedIDs(t *testing.T) {
	k := NewKeys()
	a, b := k.Intern("a"), k.Intern("b")
	if a == b {
		t.Fatalf("two keys got one ID %d", a)
	}
	if again := k.Intern("a"); again != a {
		t.Fatalf("Intern of a known key gave %d, want %d", again, a)
	}
	k.Release(a)
	if id, ok := k.Lookup("a"); !ok || id != a || k.UID(a) != "a" {
		t.Fatalf("a released once of twice: Lookup = %d, %v", id, ok)
	}
	k.Release(a)
	if _, ok := k.Lookup("a"); ok {
		t.Fatalf("a still interned after its last release")
	}
	if c := k.Intern("c"); c != a {
		t.Fatalf("new key got %d, want the freed %d", c, a)
	}
	if k.Len() != 2 || k.Cap() != 2 {
		t.Fatalf("Len %d, Cap %d; want 2 and 2", k.Len(), k.Cap())
	}
}

// TestStateMovesToAnotherTable: a state filled through one table (as a
// reconciler's aggregate is) and then used with a watch's table keys its
// entries anew, once: what it holds, its value errors and later deletes
// by UID are unchanged, and the first table keeps no reference.
func TestStateMovesToAnotherTable(t *testing.T) {
	for _, vf := range []*v1alpha1.ValueFrom{nil, {FieldPath: "metadata.labels.v"}} {
		e := mustCompile(t, Spec{ValueFrom: vf, Projections: []v1alpha1.Projection{{Name: "team", FieldPath: "metadata.labels.team"}}})
		obj := func(uid, team, v string) map[string]any {
			return map[string]any{"metadata": map[string]any{"uid": uid, "labels": map[string]any{"team": team, "v": v}}}
		}
		a := NewAggregate(e)
		own := a.Shared().keys
		a.Replace([]map[string]any{obj("moves-1", "x", "1"), obj("moves-2", "y", "two"), obj("moves-3", "x", "3")})
		before, lenBefore := render(a.Series()), a.Len()
		watch := NewKeys()
		id := watch.Intern("moves-4")
		if changed, held := a.Shared().Upsert(watch, id, obj("moves-4", "y", "4"), false); !changed || !held {
			t.Fatalf("valueFrom %v: upsert through the watch's table: changed %v, held %v", vf != nil, changed, held)
		}
		watch.Release(id)
		if a.Len() != lenBefore+1 {
			t.Fatalf("valueFrom %v: %d objects after the move and one more, want %d", vf != nil, a.Len(), lenBefore+1)
		}
		if own.Len() != 0 {
			t.Fatalf("valueFrom %v: the first table still holds %d moved objects", vf != nil, own.Len())
		}
		if n, _ := a.ObjectErrors(); vf != nil && n != 1 {
			t.Fatalf("valueFrom %v: %d value errors after the move, want 1", vf != nil, n)
		}
		a.Delete("moves-4")
		if got := render(a.Series()); got != before {
			t.Fatalf("valueFrom %v: after the move and back:\n%s\nwant\n%s", vf != nil, got, before)
		}
		for _, uid := range []string{"moves-1", "moves-2", "moves-3"} {
			a.Delete(uid)
		}
		if a.Len() != 0 || watch.Len() != 0 {
			t.Fatalf("valueFrom %v: after deleting all: %d objects, %d IDs held", vf != nil, a.Len(), watch.Len())
		}
	}
}
