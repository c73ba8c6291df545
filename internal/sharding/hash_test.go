package sharding

import (
	"fmt"
	"testing"
)

func keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("Metric/ns-%d/metric-%d", i%7, i)
	}
	return ks
}

func TestOwnerBalance(t *testing.T) {
	for _, tc := range []struct {
		members []string
		keys    int
		// tolerance is the most a member's share may differ from an even
		// split, as a fraction of it.
		tolerance float64
	}{
		{[]string{"a"}, 100, 0},
		{[]string{"operator-7d9f-x1", "operator-7d9f-x2"}, 3000, 0.1},
		{[]string{"r-a", "r-b", "r-c"}, 3000, 0.1},
		{[]string{"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10"}, 10000, 0.15},
	} {
		t.Run(fmt.Sprint(len(tc.members)), func(t *testing.T) {
			count := map[string]int{}
			for _, k := range keys(tc.keys) {
				count[Owner(k, tc.members)]++
			}
			even := float64(tc.keys) / float64(len(tc.members))
			for _, m := range tc.members {
				if d := float64(count[m]) - even; d > tc.tolerance*even || -d > tc.tolerance*even {
					t.Errorf("%s owns %d keys, an even share is %.0f", m, count[m], even)
				}
			}
		})
	}
}

func TestOwnerMovesOnlyWhatMust(t *testing.T) {
	three := []string{"r-a", "r-b", "r-c"}
	for _, tc := range []struct {
		name  string
		after []string
		// moved is who may receive a moved key; gone, whose keys may move.
		receivers map[string]bool
		gone      string
	}{
		{"join", []string{"r-a", "r-b", "r-c", "r-d"}, map[string]bool{"r-d": true}, ""},
		{"loss", []string{"r-a", "r-c"}, map[string]bool{"r-a": true, "r-c": true}, "r-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			moved := 0
			ks := keys(3000)
			for _, k := range ks {
				before, after := Owner(k, three), Owner(k, tc.after)
				if before == after {
					continue
				}
				moved++
				if !tc.receivers[after] {
					t.Errorf("%s moved from %s to %s", k, before, after)
				}
				if tc.gone != "" && before != tc.gone {
					t.Errorf("%s moved from %s, which stayed", k, before)
				}
			}
			// About 1/4 of the keys on a join, 1/3 on a loss.
			want := len(ks) / max(len(three), len(tc.after))
			if moved < want*8/10 || moved > want*12/10 {
				t.Errorf("%d of %d keys moved, want about %d", moved, len(ks), want)
			}
		})
	}
}

func TestOwnerIgnoresOrderAndHandlesEmpty(t *testing.T) {
	if got := Owner("k", nil); got != "" {
		t.Errorf("no members: owner %q", got)
	}
	for _, k := range keys(200) {
		if a, b := Owner(k, []string{"x", "y", "z"}), Owner(k, []string{"z", "x", "y"}); a != b {
			t.Fatalf("%s: owner depends on order: %s, %s", k, a, b)
		}
	}
}
