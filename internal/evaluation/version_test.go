package evaluation

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestVersionFollowsSeries drives aggregates, some sharing a state and
// some with limits they go over, through random upserts, deletes,
// replaces, polls, attaches and closes: an aggregate's Version never goes back,
// moves whenever a call reports a change, and whenever Series differs
// from what it was at the last reading, so that a reader that rendered
// the series at one version may serve them while it stays.
func TestVersionFollowsSeries(t *testing.T) {
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 11))
		e := byTeam(t)
		var aggs []*Aggregate
		for range 1 + rng.IntN(4) {
			var l Limits
			if rng.IntN(3) == 0 {
				l.MaxSeries = 1 + rng.IntN(2)
			}
			a := NewLimitedAggregate(e, l)
			if len(aggs) > 0 && rng.IntN(2) == 0 {
				a.Attach(aggs[rng.IntN(len(aggs))])
			}
			aggs = append(aggs, a)
		}
		type seen struct {
			version uint64
			series  string
		}
		last := make([]seen, len(aggs))
		for i, a := range aggs {
			last[i] = seen{a.Version(), fmt.Sprint(a.Series())}
		}
		teams := []string{"a", "b", "c"}
		objs := func() []map[string]any {
			var out []map[string]any
			for i := range rng.IntN(5) {
				out = append(out, teamObj(i, teams[rng.IntN(3)]))
			}
			return out
		}
		for step := range 40 {
			i := rng.IntN(len(aggs))
			a := aggs[i]
			var changed bool
			var op string
			switch k := rng.IntN(10); {
			case k < 5:
				o := rng.IntN(5)
				op = "upsert " + strconv.Itoa(o)
				changed = a.Upsert("u"+strconv.Itoa(o), teamObj(o, teams[rng.IntN(3)]))
			case k < 7:
				o := rng.IntN(5)
				op = "delete " + strconv.Itoa(o)
				changed = a.Delete("u" + strconv.Itoa(o))
			case k < 8:
				op = "replace"
				changed = a.Replace(objs())
			case k < 9:
				op = "poll"
				changed = a.Poll(objs())
			default:
				op = "close"
				a.Close()
			}
			for j, b := range aggs {
				v, s := b.Version(), fmt.Sprint(b.Series())
				switch {
				case v < last[j].version:
					t.Fatalf("seed %d step %d (%s on %d): aggregate %d went back from version %d to %d", seed, step, op, i, j, last[j].version, v)
				case s != last[j].series && v == last[j].version:
					t.Fatalf("seed %d step %d (%s on %d): aggregate %d changed series at version %d:\n%s\n%s", seed, step, op, i, j, v, last[j].series, s)
				case j == i && changed && v == last[j].version:
					t.Fatalf("seed %d step %d (%s): a reported change left version %d", seed, step, op, v)
				}
				last[j] = seen{v, s}
			}
		}
	}
}
