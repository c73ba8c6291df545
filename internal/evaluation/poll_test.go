package evaluation

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// pollSpecs are a count and every aggregation of a value, by team.
func pollSpecs(t *testing.T) map[string]*Evaluator {
	out := map[string]*Evaluator{"count": byTeam(t)}
	for _, agg := range []v1alpha1.Aggregation{v1alpha1.AggregationSum, v1alpha1.AggregationMax,
		v1alpha1.AggregationMin, v1alpha1.AggregationMean} {
		out[string(agg)] = mustCompile(t, Spec{
			Projections: []v1alpha1.Projection{{Name: "team", FieldPath: "metadata.labels.team"}},
			ValueFrom:   &v1alpha1.ValueFrom{FieldPath: "spec.v", Aggregation: agg},
		})
	}
	return out
}

// polledObj is object i of team with value v; a negative v is a string
// that is no number, an error for a valueFrom spec.
func polledObj(i int, team string, v int) map[string]any {
	obj := teamObj(i, team)
	if v < 0 {
		obj["spec"] = map[string]any{"v": "n/a"}
	} else {
		obj["spec"] = map[string]any{"v": int64(v)}
	}
	return obj
}

// TestPollFollowsReplace polls one aggregate with lists of objects
// coming, going, moving between series and changing values, under a
// series limit or a budget: after every poll it has the series, objects,
// value errors, limit state and budget use of a fresh aggregate that
// Replace gave the same list; it reports changed (and moves its Version)
// exactly when its series or limit state changed; it keeps no object
// between polls; and Close gives its whole budget back.
func TestPollFollowsReplace(t *testing.T) {
	for name, e := range pollSpecs(t) {
		for seed := range 100 {
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			limits := func() Limits {
				if seed%3 == 0 {
					return Limits{MaxSeries: 2}
				}
				return Limits{Budget: NewBudget(1 + seed%4)}
			}
			polled := NewLimitedAggregate(e, limits())
			budget := polled.limits.Budget
			teams := []string{"a", "b", "c", "d"}
			lastSeries, lastVersion, lastErr := render(polled.Series()), polled.Version(), ""
			for step := range 30 {
				var objs []map[string]any
				for i := range rng.IntN(8) {
					if rng.IntN(4) > 0 { // some objects are missing from this list
						objs = append(objs, polledObj(i, teams[rng.IntN(1+seed%4)], rng.IntN(20)-2))
					}
				}
				changed := polled.Poll(objs)
				fresh := NewLimitedAggregate(e, limits())
				fresh.Replace(objs)
				where := fmt.Sprintf("%s seed %d step %d", name, seed, step)

				series, version, err := render(polled.Series()), polled.Version(), reason.Of(polled.Err(), "")
				if want := render(fresh.Series()); series != want {
					t.Fatalf("%s: polled series\n%s, replaced\n%s", where, series, want)
				}
				if want := reason.Of(fresh.Err(), ""); err != want {
					t.Fatalf("%s: polled limit %q, replaced %q", where, err, want)
				}
				if polled.Len() != fresh.Len() {
					t.Fatalf("%s: polled Len %d, replaced %d", where, polled.Len(), fresh.Len())
				}
				pn, pmsg := polled.ObjectErrors()
				rn, rmsg := fresh.ObjectErrors()
				if pn != rn || pmsg != rmsg {
					t.Fatalf("%s: polled errors %d %q, replaced %d %q", where, pn, pmsg, rn, rmsg)
				}
				if budget != nil && budget.Used() != len(polled.Series()) {
					t.Fatalf("%s: budget used %d for %d series", where, budget.Used(), len(polled.Series()))
				}
				if wantChanged := series != lastSeries || err != lastErr; changed != wantChanged {
					t.Fatalf("%s: changed = %v, series went from\n%s to\n%s (limit %q to %q)", where, changed, lastSeries, series, lastErr, err)
				}
				if moved := version != lastVersion; moved != changed || version < lastVersion {
					t.Fatalf("%s: version went from %d to %d, changed %v", where, lastVersion, version, changed)
				}
				if c := polled.Shared(); c.entries.len() != 0 || c.keys.Len() != 0 || len(c.errs) != 0 {
					t.Fatalf("%s: kept %d entries, %d keys, %d errors between polls", where, c.entries.len(), c.keys.Len(), len(c.errs))
				}
				lastSeries, lastVersion, lastErr = series, version, err
			}
			polled.Close()
			if budget.Used() != 0 {
				t.Fatalf("%s seed %d: budget used %d after Close, want 0", name, seed, budget.Used())
			}
			if polled.Poll([]map[string]any{polledObj(0, "a", 1)}) || budget.Used() != 0 || render(polled.Series()) != lastSeries {
				t.Fatalf("%s seed %d: a closed aggregate was polled", name, seed)
			}
		}
	}
}

// TestPollBudgetCharge checks that a poll charges the budget for the
// difference in series: a metric that keeps its series keeps its share
// even when the budget is full, one that needs more is refused and gives
// everything back, and what one frees another may take.
func TestPollBudgetCharge(t *testing.T) {
	b := NewBudget(4)
	first, second := NewLimitedAggregate(byTeam(t), Limits{Budget: b}), NewLimitedAggregate(byTeam(t), Limits{Budget: b})
	list := func(teams ...string) []map[string]any {
		var out []map[string]any
		for i, team := range teams {
			out = append(out, teamObj(i, team))
		}
		return out
	}
	first.Poll(list("a", "b", "c"))
	second.Poll(list("x"))
	if b.Used() != 4 {
		t.Fatalf("budget used %d, want 4", b.Used())
	}
	// Other series, as many: the full budget does not refuse them.
	if !first.Poll(list("d", "e", "f", "f")) || first.Err() != nil || b.Used() != 4 {
		t.Fatalf("a poll keeping its number of series: Err %v, used %d", first.Err(), b.Used())
	}
	second.Poll(list("x", "y"))
	wantLimit(t, second, v1alpha1.ReasonSeriesBudgetExceeded)
	if b.Used() != 3 {
		t.Fatalf("budget used %d after a refused poll, want 3 (it gave its series back)", b.Used())
	}
	first.Poll(list("d"))
	if !second.Poll(list("x", "y")) || second.Err() != nil || b.Used() != 3 {
		t.Fatalf("a poll after series were freed: Err %v, used %d", second.Err(), b.Used())
	}
	first.Close()
	second.Close()
	if b.Used() != 0 {
		t.Fatalf("budget used %d after Close, want 0", b.Used())
	}
}

// TestPollWhileRead polls an aggregate under a budget while others read
// its series, version and errors and finally close it: readers see one
// poll's series or the next, never a list half applied, and the budget
// ends empty.
func TestPollWhileRead(t *testing.T) {
	e := mustCompile(t, benchSpecs["ready-filter-max"])
	objs := benchObjects(400)
	whole := NewAggregate(e)
	whole.Replace(objs)
	want := render(whole.Series())
	b := NewBudget(1000)
	a := NewLimitedAggregate(e, Limits{Budget: b})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if got := render(a.Series()); got != "" && got != want {
					t.Errorf("a reader saw series of no poll:\n%s", got)
					return
				}
				_ = a.Version()
				_, _ = a.ObjectErrors()
			}
		})
	}
	for range 20 {
		a.Poll(objs)
	}
	close(done)
	wg.Wait()
	a.Close()
	if b.Used() != 0 {
		t.Fatalf("budget used %d after Close, want 0", b.Used())
	}
}
