package evaluation

import (
	"fmt"
	"strings"
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

func named(i int, labels map[string]any) map[string]any {
	return map[string]any{"metadata": map[string]any{"uid": fmt.Sprint("uid-", i), "name": fmt.Sprint("o", i), "labels": labels}}
}

func byName(t testing.TB) *Evaluator {
	return mustCompile(t, Spec{Projections: []v1alpha1.Projection{{Name: "name", FieldPath: "metadata.name"}}})
}

func wantLimit(t *testing.T, a *Aggregate, want string) {
	t.Helper()
	err := a.Err()
	if got := reason.Of(err, ""); got != want {
		t.Fatalf("Err() = %v, want reason %q", err, want)
	}
	if want != "" && (len(a.Series()) != 0 || a.Len() != 0) {
		t.Fatalf("over the limit but holding %d series and %d objects", len(a.Series()), a.Len())
	}
}

func TestSeriesLimit(t *testing.T) {
	a := NewLimitedAggregate(byName(t), Limits{MaxSeries: 3})
	for i := range 3 {
		a.Upsert(fmt.Sprint("uid-", i), named(i, nil))
	}
	wantLimit(t, a, "")
	// Moving the object of a series it alone holds to a new series stays
	// within the limit.
	moved := named(0, nil)
	moved["metadata"].(map[string]any)["name"] = "renamed"
	a.Upsert("uid-0", moved)
	wantLimit(t, a, "")
	if !a.Upsert("uid-9", named(9, nil)) {
		t.Error("going over the limit reported no change")
	}
	wantLimit(t, a, v1alpha1.ReasonSeriesLimitExceeded)
	if !strings.Contains(a.Err().Error(), "more than 3 series") {
		t.Errorf("message %q does not state the limit", a.Err())
	}
	// Over the limit, objects are ignored and nothing is held.
	if a.Upsert("uid-10", named(10, nil)) || a.Delete("uid-1") {
		t.Error("an aggregate over its limit reported a change")
	}
	wantLimit(t, a, v1alpha1.ReasonSeriesLimitExceeded)

	// A Replace tries again: over the limit again with four objects,
	// within it with three.
	objs := []map[string]any{named(1, nil), named(2, nil), named(3, nil), named(4, nil)}
	a.Replace(objs)
	wantLimit(t, a, v1alpha1.ReasonSeriesLimitExceeded)
	if !a.Replace(objs[:3]) {
		t.Error("coming back within the limit reported no change")
	}
	wantLimit(t, a, "")
	if len(a.Series()) != 3 {
		t.Errorf("series = %d, want 3", len(a.Series()))
	}
}

func TestSeriesLimitCountsSeriesNotObjects(t *testing.T) {
	e := mustCompile(t, Spec{Projections: []v1alpha1.Projection{{Name: "team", FieldPath: "metadata.labels.team"}}})
	a := NewLimitedAggregate(e, Limits{MaxSeries: 2})
	for i := range 1000 {
		a.Upsert(fmt.Sprint("uid-", i), named(i, map[string]any{"team": []string{"red", "blue"}[i%2]}))
	}
	wantLimit(t, a, "")
	if a.Len() != 1000 {
		t.Errorf("Len = %d, want 1000", a.Len())
	}
}

func TestLabelValueLimit(t *testing.T) {
	e := mustCompile(t, Spec{Projections: []v1alpha1.Projection{
		{Name: "name", FieldPath: "metadata.name"}, {Name: "all", FieldPath: ".", Type: v1alpha1.ProjectionMap}}})
	a := NewLimitedAggregate(e, Limits{MaxValueLength: 200})
	a.Upsert("uid-0", named(0, nil))
	wantLimit(t, a, "")
	a.Upsert("uid-1", named(1, map[string]any{"big": strings.Repeat("x", 200)}))
	wantLimit(t, a, v1alpha1.ReasonLabelValueTooLong)
	if msg := a.Err().Error(); !strings.Contains(msg, `"all"`) || strings.Contains(msg, "xxxx") {
		t.Errorf("message %q should name the dimension and not quote the value", msg)
	}
}

func TestSeriesBudget(t *testing.T) {
	b := NewBudget(10)
	small := NewLimitedAggregate(byName(t), Limits{Budget: b})
	big := NewLimitedAggregate(byName(t), Limits{Budget: b})
	for i := range 4 {
		small.Upsert(fmt.Sprint("uid-", i), named(i, nil))
	}
	for i := range 6 {
		big.Upsert(fmt.Sprint("uid-", i), named(i, nil))
	}
	if b.Used() != 10 {
		t.Fatalf("budget used = %d, want 10", b.Used())
	}
	big.Upsert("uid-6", named(6, nil))
	wantLimit(t, big, v1alpha1.ReasonSeriesBudgetExceeded)
	wantLimit(t, small, "")
	if b.Used() != 4 {
		t.Errorf("budget used = %d after the big one went over, want 4 (it gave its series back)", b.Used())
	}
	// Deletes give series back; Close gives the rest.
	small.Delete("uid-0")
	if b.Used() != 3 {
		t.Errorf("budget used = %d after a delete, want 3", b.Used())
	}
	small.Close()
	if b.Used() != 0 {
		t.Errorf("budget used = %d after Close, want 0", b.Used())
	}
	if small.Upsert("uid-9", named(9, nil)) || b.Used() != 0 {
		t.Error("a closed aggregate took an object")
	}
	if NewBudget(0) != nil {
		t.Error("a zero budget is not unlimited")
	}
}

// TestNamespaceBudgets checks that one namespace's metrics cannot use up
// the series of the others: a namespace over its budget is refused
// (naming --max-series-per-namespace) while another namespace still gets
// series from the operator's budget, which counts both; and that a
// refusal by the operator's budget takes nothing from the namespace's.
func TestNamespaceBudgets(t *testing.T) {
	bs := NewBudgets(5, 8)
	greedy := NewLimitedAggregate(byName(t), Limits{Budget: bs.For("greedy")})
	for i := range 6 {
		greedy.Upsert(fmt.Sprint("uid-", i), named(i, nil))
	}
	wantLimit(t, greedy, v1alpha1.ReasonSeriesBudgetExceeded)
	if msg := greedy.Err().Error(); !strings.Contains(msg, "--max-series-per-namespace") || !strings.Contains(msg, "greedy") {
		t.Errorf("message %q should name the namespace budget", msg)
	}
	if got := bs.Total().Used(); got != 0 {
		t.Errorf("operator budget used = %d after the greedy namespace went over, want 0", got)
	}
	other := NewLimitedAggregate(byName(t), Limits{Budget: bs.For("other")})
	for i := range 5 {
		other.Upsert(fmt.Sprint("uid-", i), named(i, nil))
	}
	wantLimit(t, other, "")
	third := NewLimitedAggregate(byName(t), Limits{Budget: bs.For("third")})
	for i := range 4 {
		third.Upsert(fmt.Sprint("uid-", i), named(i, nil))
	}
	// 5 + 3 fill the operator's 8: the fourth is refused by it.
	wantLimit(t, third, v1alpha1.ReasonSeriesBudgetExceeded)
	if msg := third.Err().Error(); !strings.Contains(msg, "--max-series-total") {
		t.Errorf("message %q should name the operator's budget", msg)
	}
	if got, want := bs.For("third").Used(), 0; got != want {
		t.Errorf("namespace budget used = %d after the operator's refused, want %d (all given back)", got, want)
	}
	if got := bs.Total().Used(); got != 5 {
		t.Errorf("operator budget used = %d, want 5 (the other namespace's)", got)
	}
	if NewBudgets(0, 0).For("x") != nil {
		t.Error("no limits should be an unlimited (nil) budget")
	}
	if b := NewBudgets(0, 10).For("x"); b == nil || b.Limit() != 10 {
		t.Error("without a namespace limit a namespace should share the operator's budget")
	}
}

func TestLimitsLower(t *testing.T) {
	for _, tt := range []struct{ operator, spec, want int }{
		{10000, 0, 10000}, {10000, 50, 50}, {10000, 20000, 10000}, {0, 50, 50}, {0, 0, 0},
	} {
		if got := (Limits{MaxSeries: tt.operator}).Lower(tt.spec).MaxSeries; got != tt.want {
			t.Errorf("Lower(%d) of %d = %d, want %d", tt.spec, tt.operator, got, tt.want)
		}
	}
}

// BenchmarkUpsertOverLimit is the cost an event has for a metric over
// its limit: none beyond a lock.
func BenchmarkUpsertOverLimit(b *testing.B) {
	a := NewLimitedAggregate(byName(b), Limits{MaxSeries: 1})
	a.Upsert("uid-0", named(0, nil))
	a.Upsert("uid-1", named(1, nil))
	obj := named(2, nil)
	b.ReportAllocs()
	for b.Loop() {
		a.Upsert("uid-2", obj)
	}
}
