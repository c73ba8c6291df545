package sharding

import (
	"slices"
	"testing"
)

func TestRunnerUpIsTheOwnerWithoutTheOwner(t *testing.T) {
	for _, members := range [][]string{{"a", "b"}, {"a", "b", "c"}, {"c", "a", "b", "a"}, {"r1", "r2", "r3", "r4", "r5"}} {
		for _, k := range keys(500) {
			owner := Owner(k, members)
			rest := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == owner })
			if got, want := RunnerUp(k, members), Owner(k, rest); got != want {
				t.Fatalf("RunnerUp(%s, %v) = %q, want %q (the owner once %s is gone)", k, members, got, want, owner)
			}
		}
	}
	if got := RunnerUp("Metric/ns/x", []string{"a"}); got != "" {
		t.Errorf("RunnerUp of one member = %q, want none", got)
	}
}

// standbyCluster is three settled members with warm standby, every key
// held by its owner and kept ready by its runner-up ("r" being both the
// holder that asks Hold and StandBy), as the event-driven reconciler
// does.
func standbyCluster(t *testing.T, ks []string, warm bool) cluster {
	t.Helper()
	c := cluster{}
	for _, name := range []string{"a", "b", "c"} {
		c[name] = NewShard(name)
		if warm {
			c[name].EnableWarmStandby()
		}
	}
	for i := range 2 {
		c.sync(t, []string{"a", "b", "c"}, "a", "b", "c")
		// The reconcilers look at every key once when they start.
		c.reconcileStandby(t, ks, i == 0)
	}
	if got := c.served(); got != len(ks) {
		t.Fatalf("three settled members serve %d of %d keys", got, len(ks))
	}
	return c
}

// reconcileStandby is reconcile for a holder that also stands by: each
// key Stale names (every key with all) is held if Hold grants it, else
// released and stood by if StandBy says so.
func (c cluster) reconcileStandby(t *testing.T, ks []string, all bool) {
	t.Helper()
	for _, s := range c {
		for _, k := range ks {
			if (all || s.Stale("r", k)) && !s.Hold("r", k) {
				s.Release("r", k)
				s.StandBy("r", k)
			}
		}
	}
	c.checkExclusive(t, ks)
	for name, s := range c {
		for _, k := range ks {
			if s.Stale("r", k) {
				t.Fatalf("%s: %s still stale after its reconcile", name, k)
			}
		}
	}
}

// stoodBy returns the keys the shard's holder "r" keeps ready.
func (c cluster) stoodBy(name string) map[string]bool {
	s := c[name]
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for h := range s.stood {
		out[h.key] = true
	}
	return out
}

// TestShardStandByPreparesWhatItTakesOver: with warm standby each member
// keeps ready exactly the keys it is the runner-up of, so when a member
// is lost every key of it is granted at once (no acknowledgement round)
// to the one survivor that kept it ready, before any reconcile; it is
// never granted to two, and a survivor keeps ready nothing it serves.
func TestShardStandByPreparesWhatItTakesOver(t *testing.T) {
	ks := keys(300)
	abc, ac := []string{"a", "b", "c"}, []string{"a", "c"}
	c := standbyCluster(t, ks, true)
	for _, name := range abc {
		ready := c.stoodBy(name)
		for _, k := range ks {
			if want := RunnerUp(k, abc) == name; ready[k] != want {
				t.Fatalf("%s keeps %s ready: %v, want %v (owner %s, runner-up %s)", name, k, ready[k], want, Owner(k, abc), RunnerUp(k, abc))
			}
		}
	}

	// b is lost: a and c see it at different moments.
	readyBefore := map[string]map[string]bool{"a": c.stoodBy("a"), "c": c.stoodBy("c")}
	delete(c, "b")
	c.sync(t, ac, "a")
	c.sync(t, ac, "c")
	taken := 0
	for _, k := range ks {
		if Owner(k, abc) != "b" {
			continue
		}
		taken++
		var granted []string
		for _, name := range ac {
			s := c[name]
			s.mu.Lock()
			if s.grantsLocked(k) {
				granted = append(granted, name)
			}
			s.mu.Unlock()
		}
		if len(granted) != 1 || !readyBefore[granted[0]][k] {
			t.Fatalf("b's %s is granted to %v at once; want exactly the survivor that kept it ready", k, granted)
		}
		// What promotion does: Hold the kept-ready key.
		if !c[granted[0]].Hold("r", k) {
			t.Fatalf("%s: Hold refuses %s, which it grants", granted[0], k)
		}
	}
	if taken == 0 {
		t.Fatal("b owned no key")
	}
	c.reconcileStandby(t, ks, false)
	if got := c.served(); got != len(ks) {
		t.Fatalf("after the loss %d of %d keys are served", got, len(ks))
	}
	// Two members left: each keeps ready what the other serves.
	for _, name := range ac {
		ready := c.stoodBy(name)
		for _, k := range ks {
			if want := Owner(k, ac) != name; ready[k] != want {
				t.Fatalf("after the loss %s keeps %s ready: %v, want %v", name, k, ready[k], want)
			}
		}
	}
}

// TestShardStandByOnJoinAndFencing: a joining member keeps ready the keys
// it owns while the others have not acknowledged it yet; a fenced member
// keeps nothing ready; without warm standby nothing is kept ready and
// Stale names no key for it.
func TestShardStandByOnJoinAndFencing(t *testing.T) {
	ks := keys(300)
	abcd := []string{"a", "b", "c", "d"}
	c := standbyCluster(t, ks, true)
	c["d"] = NewShard("d")
	c["d"].EnableWarmStandby()
	c.sync(t, abcd, "d")
	c.reconcileStandby(t, ks, true)
	ready := c.stoodBy("d")
	for _, k := range ks {
		owner := Owner(k, abcd)
		if want := owner == "d" || RunnerUp(k, abcd) == "d"; ready[k] != want {
			t.Fatalf("the joiner keeps %s ready: %v, want %v (owner %s)", k, ready[k], want, owner)
		}
	}
	if n := len(c["d"].holds); n != 0 {
		t.Fatalf("the joiner holds %d keys before the others acknowledged it", n)
	}

	c["a"].Update([]string{"a", "b", "c"}, false, nil)
	c.reconcileStandby(t, ks, false)
	if n := len(c.stoodBy("a")); n != 0 {
		t.Fatalf("a fenced member keeps %d keys ready", n)
	}

	cold := standbyCluster(t, ks, false)
	for name, s := range cold {
		for _, k := range ks {
			if s.StandBy("r", k) {
				t.Fatalf("%s keeps %s ready without warm standby", name, k)
			}
		}
	}
}
