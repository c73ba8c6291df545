package events

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
)

// propMetric is one metric of the property test: its subscription on the
// handler's (indexed, shared) path and its reference aggregate, fed
// every event alone as the handler did before it had an index.
type propMetric struct {
	id      string
	sub     *registry.Subscription
	ref     *evaluation.Aggregate
	changed int // OnChange calls on the handler's path
	want    int // changes of the reference
	synced  int
}

// TestIndexedPathMatchesBruteForce drives random objects through the
// handler, metrics with random selectors (many of them identical, so
// they share state) and random limits, in random sequences of adds,
// relabels, deletes, relists, metrics joining, leaving and changing spec.
// After every step each metric must hold exactly what a lone aggregate
// given every event holds (series, and whether and why it is over its
// limits), and must have been told of exactly the changes that aggregate
// reported. The watch holds no object ID longer than the object.
func TestIndexedPathMatchesBruteForce(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 50
	}
	shared := 0
	for seed := range seeds {
		shared += propRun(t, seed)
	}
	// The sequences must exercise sharing, not only lone metrics.
	if shared < seeds {
		t.Fatalf("metrics shared a state in only %d steps of %d runs", shared, seeds)
	}
}

// propRun runs one random sequence and returns in how many steps some
// metrics shared a state.
func propRun(t *testing.T, seed int) (shared int) {
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	term := func() string {
		return pick("team=0", "team=1", "team!=1", "team in (0,2)", "team notin (0,1)", "team", "!team",
			"tier=a", "tier!=a", "tier in (a,bb)", "tier", "!tier", "tier notin (bb)")
	}
	// A pool of specs, so that metrics often share one.
	var pool []evaluation.Spec
	for range 1 + rng.IntN(6) {
		var s evaluation.Spec
		switch rng.IntN(5) {
		case 0:
		case 1:
			s.LabelSelector = term()
		default:
			s.LabelSelector = term() + "," + term()
		}
		if rng.IntN(4) == 0 {
			s.Namespace = pick("n1", "n2")
		}
		if rng.IntN(6) == 0 {
			s.FieldSelector = "metadata.name!=o1"
		}
		for _, p := range []string{"team", "tier"} {
			if rng.IntN(2) == 0 {
				s.Projections = append(s.Projections, v1alpha1.Projection{Name: p, FieldPath: "metadata.labels." + p})
			}
		}
		pool = append(pool, s)
	}
	reg := registry.New()
	h := &Handler{Registry: reg}
	var metrics []*propMetric
	live := map[int]map[string]any{}
	liveObjs := func() []map[string]any {
		var out []map[string]any
		for _, i := range slices.Sorted(maps.Keys(live)) {
			out = append(out, live[i])
		}
		return out
	}
	next := 0
	join := func(id string) *propMetric {
		e, err := evaluation.Compile(pool[rng.IntN(len(pool))])
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		var limits evaluation.Limits
		if rng.IntN(3) == 0 {
			limits.MaxSeries = 1 + rng.IntN(3)
		}
		if rng.IntN(5) == 0 {
			limits.MaxValueLength = 1
		}
		m := &propMetric{id: id, ref: evaluation.NewLimitedAggregate(e, limits)}
		m.sub = &registry.Subscription{ID: id, Aggregate: evaluation.NewLimitedAggregate(e, limits),
			OnChange: func() { m.changed++ }, OnSynced: func() { m.synced++ },
			OnError: func(err error) { t.Fatalf("seed %d: %s failed: %v", seed, id, err) }}
		reg.Register(fuzzKey, m.sub)
		m.ref.Replace(liveObjs())
		metrics = append(metrics, m)
		return m
	}
	for range 1 + rng.IntN(5) {
		join("m" + strconv.Itoa(next))
		next++
	}
	h.Replace(fuzzKey, nil)
	var log []string
	check := func() {
		t.Helper()
		// An ID is held only for an object some metric holds: never for
		// one deleted or dropped.
		if w := h.watch(fuzzKey); w != nil && w.keys.Len() > len(live) {
			t.Fatalf("seed %d: after %v: the watch holds %d IDs for %d objects", seed, log, w.keys.Len(), len(live))
		}
		cores := map[*evaluation.Shared]int{}
		for _, m := range metrics {
			if cores[m.sub.Aggregate.Shared()]++; cores[m.sub.Aggregate.Shared()] == 2 {
				shared++
			}
		}
		for _, m := range metrics {
			got, want := fmt.Sprint(m.sub.Aggregate.Series()), fmt.Sprint(m.ref.Series())
			gotErr, wantErr := reason.Of(m.sub.Aggregate.Err(), "-"), reason.Of(m.ref.Err(), "-")
			if got != want || gotErr != wantErr || m.changed != m.want || m.synced != 1 {
				t.Fatalf("seed %d: %s after %v:\nindexed %s (limit %s), %d changes, synced %d\nalone   %s (limit %s), %d changes",
					seed, m.id, log, got, gotErr, m.changed, m.synced, want, wantErr, m.want)
			}
		}
	}
	check()
	for range 60 {
		switch op := rng.IntN(10); {
		case op < 5: // add or relabel
			i := rng.IntN(8)
			labels := map[string]any{}
			if v := pick("0", "1", "2", ""); v != "" {
				labels["team"] = v
			}
			if v := pick("a", "bb", ""); v != "" {
				labels["tier"] = v
			}
			o := map[string]any{"metadata": map[string]any{"name": "o" + strconv.Itoa(i), "namespace": pick("n1", "n2"),
				"uid": "u" + strconv.Itoa(i), "labels": labels}}
			live[i] = o
			log = append(log, fmt.Sprintf("upsert %d %v", i, labels))
			h.Upsert(fuzzKey, o)
			for _, m := range metrics {
				if m.ref.Upsert("u"+strconv.Itoa(i), o) {
					m.want++
				}
			}
		case op < 7: // delete
			i := rng.IntN(8)
			o, ok := live[i]
			if !ok {
				continue
			}
			delete(live, i)
			log = append(log, fmt.Sprintf("delete %d", i))
			h.Delete(fuzzKey, o)
			for _, m := range metrics {
				if m.ref.Delete("u" + strconv.Itoa(i)) {
					m.want++
				}
			}
		case op == 7: // relist
			log = append(log, "relist")
			h.Replace(fuzzKey, liveObjs())
			for _, m := range metrics {
				if m.ref.Replace(liveObjs()) {
					m.want++
				}
			}
		case op == 8: // a metric joins, or changes spec
			id := "m" + strconv.Itoa(next)
			var old *propMetric
			if len(metrics) > 0 && rng.IntN(2) == 0 {
				old = metrics[rng.IntN(len(metrics))]
				id = old.id
				metrics = slices.DeleteFunc(metrics, func(m *propMetric) bool { return m == old })
			} else {
				next++
			}
			log = append(log, "join "+id)
			m := join(id)
			if old != nil {
				old.sub.Aggregate.Close()
			}
			r := h.BeginRelist(fuzzKey, []*registry.Subscription{m.sub})
			for _, o := range liveObjs() {
				r.Add(o)
			}
			r.Finish()
		default: // a metric leaves
			if len(metrics) == 0 {
				continue
			}
			m := metrics[rng.IntN(len(metrics))]
			log = append(log, "leave "+m.id)
			reg.Unregister(m.id)
			m.sub.Aggregate.Close()
			metrics = slices.DeleteFunc(metrics, func(x *propMetric) bool { return x == m })
		}
		check()
	}
	return shared
}
