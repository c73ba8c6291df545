package registry

import (
	"slices"
	"testing"

	"github.com/SAP/metrics-operator/internal/evaluation"
)

func indexSub(t *testing.T, id string, spec evaluation.Spec) *Subscription {
	t.Helper()
	e, err := evaluation.Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &Subscription{ID: id, Aggregate: evaluation.NewAggregate(e)}
}

// TestIndexCandidates: each group is a candidate for the objects its
// anchor lets through and for no object it rules out; identical specs
// form one group; a group with nothing to index is always a candidate.
func TestIndexCandidates(t *testing.T) {
	r := New()
	k := key("")
	specs := map[string]evaluation.Spec{
		"eq":     {LabelSelector: "team=a,tier!=x"},
		"eq2":    {LabelSelector: "team=a,tier!=x"}, // the same spec: one group
		"in":     {LabelSelector: "team in (b,c)"},
		"exists": {LabelSelector: "tier"},
		"ns":     {Namespace: "n1"},
		"notin":  {LabelSelector: "team notin (a,b)"},
		"absent": {LabelSelector: "!tier"},
		"all":    {},
		"field":  {FieldSelector: "metadata.name=x"},
	}
	for id, s := range specs {
		r.Register(k, indexSub(t, id, s))
	}
	x := r.Index(k)
	if len(x.Groups) != len(specs)-1 {
		t.Fatalf("%d groups for %d specs with one repeated", len(x.Groups), len(specs))
	}
	cases := []struct {
		ns     string
		labels map[string]any
		want   []string
	}{
		{"n1", map[string]any{"team": "a", "tier": "y"}, []string{"eq", "eq2", "exists", "ns", "all", "field"}},
		{"n2", map[string]any{"team": "c"}, []string{"in", "notin", "absent", "all", "field"}},
		{"n2", map[string]any{"team": "b", "tier": "z"}, []string{"in", "exists", "all", "field"}},
		{"n2", nil, []string{"notin", "absent", "all", "field"}},
		{"n2", map[string]any{"team": 5}, []string{"notin", "absent", "all", "field"}}, // not a string: absent, as selectors read it
	}
	var s Scratch
	for _, c := range cases {
		s.Begin(x)
		var got []string
		for _, g := range x.Candidates(nil, &s, c.ns, c.labels) {
			for _, sub := range x.Groups[g].Subs {
				got = append(got, sub.ID)
			}
		}
		slices.Sort(got)
		slices.Sort(c.want)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s %v: candidates %v, want %v", c.ns, c.labels, got, c.want)
		}
	}
	// Group IDs outlive rebuilds while their spec has subscriptions.
	eq, _ := x.GroupOf(x.Groups[0].ShareKey)
	id := x.Groups[eq].ID
	r.Register(k, indexSub(t, "late", evaluation.Spec{LabelSelector: "other=1"}))
	y := r.Index(k)
	if g, ok := y.Position(id); !ok || y.Groups[g].ShareKey != x.Groups[eq].ShareKey {
		t.Fatal("a group's ID changed when another metric registered")
	}
}

// TestWatchStateGoesWithTheLastSubscription: the handler's per-watch
// state lives while the key has subscriptions.
func TestWatchStateGoesWithTheLastSubscription(t *testing.T) {
	r := New()
	k := key("a")
	if r.WatchState(k, func() any { return 1 }) != nil {
		t.Fatal("state for a key without subscriptions")
	}
	r.Register(k, &Subscription{ID: "m"})
	if got := r.WatchState(k, func() any { return 1 }); got != 1 {
		t.Fatalf("state %v", got)
	}
	r.Register(k, &Subscription{ID: "n"})
	if got := r.WatchState(k, func() any { return 2 }); got != 1 {
		t.Fatalf("state was made anew on a change of subscriptions: %v", got)
	}
	r.Unregister("m")
	r.Unregister("n")
	r.Register(k, &Subscription{ID: "m"})
	if got := r.WatchState(k, func() any { return 3 }); got != 3 {
		t.Fatalf("state outlived the key's last subscription: %v", got)
	}
}
