package evaluation

import (
	"testing"
	"unsafe"

	"k8s.io/apimachinery/pkg/labels"
)

// TestInternedSelectorIsTheSame: a selector rebuilt from interned strings
// prints as the parsed one (share keys and the index read that) and
// selects the same label sets, and two compilations share their strings.
func TestInternedSelectorIsTheSame(t *testing.T) {
	sets := []labels.Set{nil, {"team": "a"}, {"team": "b", "tier": "x"}, {"tier": "y", "n": "5"}, {"n": "12", "team": "c"},
		{"team": "a", "tier": "x", "n": "x"}}
	for _, s := range []string{"team=a", "team==a,tier!=x", "team in (c,a,b)", "team notin (a,b),!tier", "tier,team!=a",
		"n>3", "n<10,team", "team!=a,team!=b", "x.io/app=web"} {
		parsed, err := labels.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		got := internSelector(parsed)
		if got.String() != parsed.String() {
			t.Errorf("%q: rebuilt prints %q, parsed %q", s, got.String(), parsed.String())
		}
		for _, set := range sets {
			if got.Matches(set) != parsed.Matches(set) {
				t.Errorf("%q on %v: rebuilt %v, parsed %v", s, set, got.Matches(set), parsed.Matches(set))
			}
		}
	}
	a, b := mustCompile(t, Spec{LabelSelector: "team=a"}), mustCompile(t, Spec{LabelSelector: "team=a"})
	ka, kb := a.LabelRequirements()[0].Key(), b.LabelRequirements()[0].Key()
	if ka != kb || !sameString(ka, kb) {
		t.Errorf("two compilations of one selector keep two copies of its key")
	}
}

// sameString reports whether a and b are one copy.
func sameString(a, b string) bool {
	return len(a) > 0 && len(a) == len(b) && unsafeData(a) == unsafeData(b)
}

func unsafeData(s string) *byte { return unsafe.StringData(s) }
