package federation

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// TestMembers: Clusters returns what Set recorded, sorted by key, and
// subscribers hear of an access only when its clusters changed.
func TestMembers(t *testing.T) {
	m := NewMembers()
	var heard []types.NamespacedName
	m.Subscribe(func(a types.NamespacedName) { heard = append(heard, a) })
	a := types.NamespacedName{Namespace: "ns", Name: "a"}
	b := types.NamespacedName{Namespace: "ns", Name: "b"}

	m.Set(a, []Cluster{{Key: "ns/a/x/2", Name: "two"}, {Key: "ns/a/x/1", Name: "one"}})
	if got := m.Clusters(a); !slices.Equal(got, []Cluster{{Key: "ns/a/x/1", Name: "one"}, {Key: "ns/a/x/2", Name: "two"}}) {
		t.Errorf("clusters %v", got)
	}
	m.Set(a, []Cluster{{Key: "ns/a/x/1", Name: "one"}, {Key: "ns/a/x/2", Name: "two"}})
	m.Set(b, nil)
	if !slices.Equal(heard, []types.NamespacedName{a}) {
		t.Errorf("heard %v after one change, want [a]", heard)
	}
	m.Set(a, []Cluster{{Key: "ns/a/x/1", Name: "x/one"}, {Key: "ns/a/x/2", Name: "two"}})
	m.Set(a, nil)
	if len(heard) != 3 {
		t.Errorf("heard %v, want a rename and a removal", heard)
	}
	if got := m.Clusters(a); got != nil {
		t.Errorf("clusters %v after removal", got)
	}
	// What Clusters returns is a copy.
	m.Set(b, []Cluster{{Key: "k", Name: "n"}})
	m.Clusters(b)[0].Name = "changed"
	if m.Clusters(b)[0].Name != "n" {
		t.Error("Clusters shares its slice")
	}
}
