package evaluation

import (
	"fmt"
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

func byTeam(t *testing.T) *Evaluator {
	t.Helper()
	return mustCompile(t, Spec{Projections: []v1alpha1.Projection{{Name: "team", FieldPath: "metadata.labels.team"}}})
}

func teamObj(i int, team string) map[string]any {
	return map[string]any{"metadata": map[string]any{"uid": fmt.Sprint("u", i), "labels": map[string]any{"team": team}}}
}

// TestSharedAggregatesKeepTheirOwnLimits: aggregates sharing one state
// are each held to their own limits and each take their series from the
// budget, as if alone; one over its limits leaves, the others go on, and
// a limit cannot be lifted by sharing with a metric that has none.
func TestSharedAggregatesKeepTheirOwnLimits(t *testing.T) {
	budget := NewBudget(100)
	host := NewLimitedAggregate(byTeam(t), Limits{Budget: budget})
	host.Replace([]map[string]any{teamObj(1, "a"), teamObj(2, "b")})

	small := NewLimitedAggregate(byTeam(t), Limits{MaxSeries: 1, Budget: budget})
	if !small.Attach(host) {
		t.Fatal("a fresh aggregate of the same spec did not attach")
	}
	if reason.Of(small.Err(), "") != v1alpha1.ReasonSeriesLimitExceeded || small.SeriesLen() != 0 {
		t.Fatalf("maxSeries 1 attached to 2 series: err %v, %d series; want SeriesLimitExceeded and none", small.Err(), small.SeriesLen())
	}

	three := NewLimitedAggregate(byTeam(t), Limits{MaxSeries: 3, Budget: budget})
	short := NewLimitedAggregate(byTeam(t), Limits{MaxValueLength: 2, Budget: budget})
	if !three.Attach(host) || !short.Attach(host) || three.Shared() != host.Shared() || short.Shared() != host.Shared() {
		t.Fatal("aggregates within their limits did not share the host's state")
	}
	if got := budget.Used(); got != 6 {
		t.Fatalf("budget used %d with three aggregates of 2 series each, want 6", got)
	}
	// A third series: all within limits. A long value: short leaves.
	if !three.Upsert("u3", teamObj(3, "c")) {
		t.Fatal("a new series did not change the shared state")
	}
	if host.SeriesLen() != 3 || three.SeriesLen() != 3 || short.SeriesLen() != 3 || budget.Used() != 9 {
		t.Fatalf("after a third series: %d/%d/%d series, budget %d", host.SeriesLen(), three.SeriesLen(), short.SeriesLen(), budget.Used())
	}
	host.Upsert("u4", teamObj(4, "long"))
	if reason.Of(short.Err(), "") != v1alpha1.ReasonLabelValueTooLong || short.SeriesLen() != 0 || short.Shared() == host.Shared() {
		t.Fatalf("short: err %v, %d series; want LabelValueTooLong, none, its own state", short.Err(), short.SeriesLen())
	}
	if reason.Of(three.Err(), "") != v1alpha1.ReasonSeriesLimitExceeded || three.SeriesLen() != 0 {
		t.Fatalf("three at a fourth series: err %v; want SeriesLimitExceeded", three.Err())
	}
	if host.Err() != nil || host.SeriesLen() != 4 || budget.Used() != 4 {
		t.Fatalf("host: err %v, %d series, budget %d; want it alone with 4", host.Err(), host.SeriesLen(), budget.Used())
	}
	// A Replace of a tripped aggregate tries again, alone.
	if !three.Replace([]map[string]any{teamObj(1, "a")}) || three.Err() != nil || three.SeriesLen() != 1 || host.SeriesLen() != 4 {
		t.Fatalf("three after Replace: err %v, %d series; host %d", three.Err(), three.SeriesLen(), host.SeriesLen())
	}
}

// TestSharedBudget: an aggregate that cannot take the host's series from
// its budget is refused on attach, and Close of one sharer gives back its
// share only, leaving the others' series in place.
func TestSharedBudget(t *testing.T) {
	budget := NewBudget(3)
	host := NewLimitedAggregate(byTeam(t), Limits{Budget: budget})
	host.Replace([]map[string]any{teamObj(1, "a"), teamObj(2, "b")})
	late := NewLimitedAggregate(byTeam(t), Limits{Budget: budget})
	if !late.Attach(host) || reason.Of(late.Err(), "") != v1alpha1.ReasonSeriesBudgetExceeded || budget.Used() != 2 {
		t.Fatalf("late: err %v, budget %d; want SeriesBudgetExceeded and the host's 2", late.Err(), budget.Used())
	}

	other := NewLimitedAggregate(byTeam(t), Limits{})
	host2 := NewLimitedAggregate(byTeam(t), Limits{})
	host2.Replace([]map[string]any{teamObj(1, "a")})
	if !other.Attach(host2) {
		t.Fatal("no attach")
	}
	other.Close()
	host2.Upsert("u2", teamObj(2, "b"))
	if got := fmt.Sprint(other.Series()); got != "[{[{team a}] 1}]" {
		t.Fatalf("a closed sharer shows %s, want its series frozen at Close", got)
	}
	if host2.SeriesLen() != 2 {
		t.Fatalf("host after a sharer closed: %d series, want 2", host2.SeriesLen())
	}
}

// TestAttachRefused: only a fresh aggregate of the same spec attaches, and
// only to one that takes objects.
func TestAttachRefused(t *testing.T) {
	host := NewAggregate(byTeam(t))
	used := NewAggregate(byTeam(t))
	used.Upsert("u1", teamObj(1, "a"))
	if used.Attach(host) {
		t.Fatal("an aggregate given objects attached")
	}
	other := NewAggregate(mustCompile(t, Spec{LabelSelector: "team=a"}))
	if other.Attach(host) {
		t.Fatal("an aggregate of another spec attached")
	}
	closed := NewAggregate(byTeam(t))
	closed.Close()
	if NewAggregate(byTeam(t)).Attach(closed) {
		t.Fatal("attached to a closed aggregate")
	}
	one, two := byTeam(t), byTeam(t)
	if one.ShareKey() != two.ShareKey() {
		t.Fatal("identical specs compiled twice have different share keys")
	}
}

// TestSharedNamespaceBudgets: metrics of two namespaces sharing a state
// each take their series from their own namespace's budget; the one whose
// namespace has none left goes over its limits, the other goes on.
func TestSharedNamespaceBudgets(t *testing.T) {
	budgets := NewBudgets(2, 10)
	a := NewLimitedAggregate(byTeam(t), Limits{Budget: budgets.For("a")})
	b := NewLimitedAggregate(byTeam(t), Limits{Budget: budgets.For("b")})
	a.Replace([]map[string]any{teamObj(1, "x")})
	if !b.Attach(a) || b.Shared() != a.Shared() {
		t.Fatal("b did not share a's state")
	}
	// b's namespace spends its second series elsewhere.
	other := NewLimitedAggregate(byTeam(t), Limits{Budget: budgets.For("b")})
	other.Replace([]map[string]any{teamObj(9, "z")})
	a.Upsert("u2", teamObj(2, "y"))
	if reason.Of(b.Err(), "") != v1alpha1.ReasonSeriesBudgetExceeded || a.Err() != nil || a.SeriesLen() != 2 {
		t.Fatalf("b: err %v; a: err %v, %d series; want b over namespace b's budget, a with 2", b.Err(), a.Err(), a.SeriesLen())
	}
	if got := budgets.For("a").Used(); got != 2 {
		t.Fatalf("namespace a's budget used %d, want 2", got)
	}
	if got := budgets.For("b").Used(); got != 1 {
		t.Fatalf("namespace b's budget used %d, want 1 (other's)", got)
	}
	if got := budgets.Total().Used(); got != 3 {
		t.Fatalf("total budget used %d, want 3", got)
	}
}
