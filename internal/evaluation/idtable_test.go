package evaluation

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestIDTableMatchesAMap drives random sets and deletes, over dense and
// spread IDs, through an idTable and a map: after every step they hold
// the same.
func TestIDTableMatchesAMap(t *testing.T) {
	for seed := range 50 {
		rng := rand.New(rand.NewPCG(uint64(seed), 3))
		span := []int{8, 64, 1000, 1 << 20}[seed%4]
		var tab idTable
		want := map[ObjectID]uint32{}
		for step := range 2000 {
			id := ObjectID(rng.IntN(span))
			switch rng.IntN(3) {
			case 0, 1:
				v := rng.Uint32()
				tab.set(id, v)
				want[id] = v
			default:
				tab.delete(id)
				delete(want, id)
			}
			if tab.len() != len(want) {
				t.Fatalf("seed %d step %d: len %d, want %d", seed, step, tab.len(), len(want))
			}
			probe := ObjectID(rng.IntN(span))
			got, ok := tab.get(probe)
			if w, wok := want[probe]; ok != wok || got != w {
				t.Fatalf("seed %d step %d: get(%d) = %d, %v; want %d, %v", seed, step, probe, got, ok, w, wok)
			}
		}
		for id, w := range want {
			if got, ok := tab.get(id); !ok || got != w {
				t.Fatalf("seed %d: get(%d) = %d, %v; want %d", seed, id, got, ok, w)
			}
		}
		ids := tab.ids()
		slices.Sort(ids)
		if len(ids) != len(want) {
			t.Fatalf("seed %d: ids lists %d, want %d", seed, len(ids), len(want))
		}
		for _, id := range ids {
			tab.delete(id)
		}
		if tab.len() != 0 {
			t.Fatalf("seed %d: %d left after deleting all", seed, tab.len())
		}
	}
}
