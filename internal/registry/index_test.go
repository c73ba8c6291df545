package registry

import (
	"slices"
	"strconv"
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

// TestDecidedGroupsMatchTheirCandidates: a group the index decides gets
// as candidates exactly the objects its selectors match, and the groups
// it does not decide are those with a term it is not indexed by.
func TestDecidedGroupsMatchTheirCandidates(t *testing.T) {
	r := New()
	k := key("")
	specs := map[string]evaluation.Spec{
		"eq": {LabelSelector: "team=a"}, "in": {LabelSelector: "team in (a,b)"}, "exists": {LabelSelector: "tier"},
		"ns": {Namespace: "n1"}, "all": {}, "not": {LabelSelector: "team!=a,!tier"}, "notin": {LabelSelector: "team notin (b)"},
		// Not decided: a second term, a namespace beside labels, a field
		// selector, a numeric comparison.
		"two": {LabelSelector: "team=a,tier=x"}, "nslabel": {Namespace: "n1", LabelSelector: "team=a"},
		"field": {FieldSelector: "metadata.name=o"}, "gt": {LabelSelector: "n>3"}, "notgt": {LabelSelector: "team!=a,n>3"},
	}
	undecided := []string{"field", "gt", "notgt", "nslabel", "two"}
	for id, s := range specs {
		r.Register(k, indexSub(t, id, s))
	}
	x := r.Index(k)
	var got []string
	for _, g := range x.Groups {
		if !g.Decided {
			got = append(got, g.Subs[0].ID)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, undecided) {
		t.Fatalf("undecided groups %v, want %v", got, undecided)
	}
	var s Scratch
	for _, ns := range []string{"n1", "n2"} {
		for _, team := range []any{nil, "a", "b", "c", 5} {
			for _, tier := range []any{nil, "x"} {
				lbls := map[string]any{}
				if team != nil {
					lbls["team"] = team
				}
				if tier != nil {
					lbls["tier"] = tier
				}
				obj := map[string]any{"metadata": map[string]any{"name": "o", "namespace": ns, "labels": lbls}}
				s.Begin(x)
				found := map[int]bool{}
				for _, g := range x.Candidates(nil, &s, ns, lbls) {
					found[g] = true
				}
				for g, grp := range x.Groups {
					if !grp.Decided {
						continue
					}
					if matches := grp.Subs[0].Aggregate.Evaluator().Matches(obj); matches != found[g] {
						t.Errorf("%s on %s %v: matches %v, candidate %v", grp.Subs[0].ID, ns, lbls, matches, found[g])
					}
				}
			}
		}
	}
}

// TestPositionOfSparseIDs: a group is found by its ID, and a group gone
// is not, whether the watch's IDs are dense or, after many spec changes,
// spread out.
func TestPositionOfSparseIDs(t *testing.T) {
	r := New()
	k := key("")
	r.Register(k, indexSub(t, "stable", evaluation.Spec{LabelSelector: "a=1"}))
	var gone []uint32
	for i := range 200 {
		r.Register(k, indexSub(t, "churn", evaluation.Spec{LabelSelector: "b=" + strconv.Itoa(i)}))
		x := r.Index(k)
		for g, grp := range x.Groups {
			if pos, ok := x.Position(grp.ID); !ok || pos != g {
				t.Fatalf("step %d: group %d (ID %d) found at %d, %v", i, g, grp.ID, pos, ok)
			}
		}
		for _, id := range gone {
			if _, ok := x.Position(id); ok {
				t.Fatalf("step %d: the gone group ID %d is found", i, id)
			}
		}
		for _, grp := range x.Groups {
			if grp.Subs[0].ID == "churn" {
				gone = append(gone, grp.ID)
			}
		}
	}
	if x := r.Index(k); x.byID == nil {
		t.Fatalf("IDs spread over %d values are kept in a slice", len(x.posByID))
	}
}
