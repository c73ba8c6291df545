package sharding

import (
	"maps"
	"slices"
	"testing"
)

// cluster is a set of shards exchanging views as their Membership would.
type cluster map[string]*Shard

// sync gives every shard in view the view and the others' current
// acknowledgements, as one listing of the Leases would.
func (c cluster) sync(t *testing.T, view []string, who ...string) {
	t.Helper()
	acks := map[string]string{}
	for name, s := range c {
		acks[name] = s.Applied()
	}
	for _, name := range who {
		c[name].Update(view, slices.Contains(view, name), acks)
	}
}

// reconcile has every shard hold what Hold grants and release what it
// does not for the keys Stale names, as the reconcilers do for the keys
// the shard's source enqueues, then checks that no key is held twice and
// that looking at every key would change nothing: no key was left out.
func (c cluster) reconcile(t *testing.T, ks []string) {
	t.Helper()
	for _, s := range c {
		for _, k := range ks {
			if s.Stale("r", k) && !s.Hold("r", k) {
				s.Release("r", k)
			}
		}
	}
	c.checkExclusive(t, ks)
	for name, s := range c {
		for _, k := range ks {
			if s.Stale("r", k) {
				t.Fatalf("%s: %s still stale after its reconcile", name, k)
			}
			s.mu.Lock()
			_, held := s.holds[k]["r"]
			s.mu.Unlock()
			if held != s.Hold("r", k) {
				t.Fatalf("%s: Hold changes its answer for %s, which Stale did not name", name, k)
			}
			if !held {
				s.Release("r", k)
			}
		}
	}
}

func (c cluster) checkExclusive(t *testing.T, ks []string) {
	t.Helper()
	for _, k := range ks {
		var holders []string
		for name, s := range c {
			s.mu.Lock()
			if len(s.holds[k]) > 0 {
				holders = append(holders, name)
			}
			s.mu.Unlock()
		}
		if len(holders) > 1 {
			t.Fatalf("%s held by %v", k, holders)
		}
	}
}

func (c cluster) served() int {
	n := 0
	for _, s := range c {
		s.mu.Lock()
		n += len(s.holds)
		s.mu.Unlock()
	}
	return n
}

func TestShardJoinHandsOverWithoutOverlap(t *testing.T) {
	ks := keys(300)
	c := cluster{"a": NewShard("a"), "b": NewShard("b")}
	ab := []string{"a", "b"}
	c.sync(t, ab, "a", "b")
	c.reconcile(t, ks)
	// Each acknowledged the view, but saw the other's acknowledgement
	// only at the next listing.
	c.sync(t, ab, "a", "b")
	c.reconcile(t, ks)
	if got := c.served(); got != len(ks) {
		t.Fatalf("two settled members serve %d of %d keys", got, len(ks))
	}

	c["c"] = NewShard("c")
	abc := []string{"a", "b", "c"}
	c.sync(t, abc, "c")
	c.reconcile(t, ks)
	if n := len(c["c"].holds); n != 0 {
		t.Fatalf("the joiner claimed %d keys before the others acknowledged it", n)
	}
	// a sees the joiner first: it drops c's keys while b still serves its own.
	c.sync(t, abc, "a")
	c.reconcile(t, ks)
	c.sync(t, abc, "c")
	c.reconcile(t, ks)
	if n := len(c["c"].holds); n != 0 {
		t.Fatalf("the joiner claimed %d keys before b acknowledged it", n)
	}
	c.sync(t, abc, "b")
	c.reconcile(t, ks)
	c.sync(t, abc, "c")
	c.reconcile(t, ks)
	if got := c.served(); got != len(ks) {
		t.Fatalf("after the join %d of %d keys are served", got, len(ks))
	}
	for k := range maps.Keys(c["c"].holds) {
		if Owner(k, abc) != "c" {
			t.Errorf("c holds %s, owned by %s", k, Owner(k, abc))
		}
	}
}

// TestShardLossIsClaimedAtOnce: when a member of a settled view is lost,
// each survivor claims the lost member's keys it owns as soon as it sees
// the loss, without waiting for the others to acknowledge the view
// without it, and no key is ever held twice; a survivor that was itself
// fenced since, or sees a member the settled view did not have, waits
// for the acknowledgements as before.
func TestShardLossIsClaimedAtOnce(t *testing.T) {
	ks := keys(300)
	abc, ac := []string{"a", "b", "c"}, []string{"a", "c"}
	settle := func() cluster {
		c := cluster{"a": NewShard("a"), "b": NewShard("b"), "c": NewShard("c")}
		for range 2 {
			c.sync(t, abc, "a", "b", "c")
			c.reconcile(t, ks)
		}
		if got := c.served(); got != len(ks) {
			t.Fatalf("three settled members serve %d of %d keys", got, len(ks))
		}
		delete(c, "b")
		return c
	}
	owned := func(c cluster, name string, view []string) (want, got int) {
		for _, k := range ks {
			if Owner(k, view) == name {
				want++
			}
		}
		c[name].mu.Lock()
		defer c[name].mu.Unlock()
		return want, len(c[name].holds)
	}

	c := settle()
	c.sync(t, ac, "a")
	c.reconcile(t, ks)
	if want, got := owned(c, "a", ac); got != want {
		t.Fatalf("a serves %d keys before c acknowledged the view without b, want the %d it owns in it", got, want)
	}
	c.sync(t, ac, "c")
	c.reconcile(t, ks)
	if got := c.served(); got != len(ks) {
		t.Fatalf("after the loss %d of %d keys are served", got, len(ks))
	}

	// a was fenced meanwhile: it has not been in every view since.
	c = settle()
	c["a"].Update(abc, false, nil)
	c.reconcile(t, ks)
	c.sync(t, ac, "a")
	c.reconcile(t, ks)
	if _, got := owned(c, "a", ac); got != 0 {
		t.Fatalf("a, fenced since the settled view, claimed %d keys before c acknowledged", got)
	}
	c.sync(t, ac, "c")
	c.reconcile(t, ks)
	c.sync(t, ac, "a")
	c.reconcile(t, ks)
	if got := c.served(); got != len(ks) {
		t.Fatalf("after a's fencing and the loss %d of %d keys are served", got, len(ks))
	}

	// A member the settled view did not have: b lost, d joined.
	c = settle()
	c["d"] = NewShard("d")
	acd := []string{"a", "c", "d"}
	c.sync(t, acd, "a")
	c.reconcile(t, ks)
	c["a"].mu.Lock()
	for k := range c["a"].holds {
		if Owner(k, abc) == "b" {
			t.Errorf("a claimed b's %s in a view with a new member before it acknowledged", k)
		}
	}
	c["a"].mu.Unlock()
	for range 2 {
		c.sync(t, acd, "a", "c", "d")
		c.reconcile(t, ks)
	}
	if got := c.served(); got != len(ks) {
		t.Fatalf("after the loss and the join %d of %d keys are served", got, len(ks))
	}
}

func TestShardFencedServesNothing(t *testing.T) {
	ks := keys(50)
	s := NewShard("a")
	notified := 0
	s.Subscribe(func(string) { notified++ })
	s.Update([]string{"a"}, true, nil)
	for _, k := range ks {
		if !s.Hold("r", k) {
			t.Fatalf("a lone settled member does not serve %s", k)
		}
	}
	before := notified
	s.Update([]string{"a"}, false, nil)
	if notified == before {
		t.Error("losing membership notified no one")
	}
	for _, k := range ks {
		if s.Hold("r", k) {
			t.Fatalf("a fenced member still serves %s", k)
		}
	}
	applied := s.Applied()
	for _, k := range ks[:len(ks)-1] {
		s.Release("r", k)
	}
	if s.Applied() != applied {
		t.Error("acknowledged before every key was dropped")
	}
	s.Release("r", ks[len(ks)-1])
	if s.Applied() == applied {
		t.Error("not acknowledged after every key was dropped")
	}
}

// TestShardHoldersDropTogether has two holders of each key, as a Metric
// has (the polling and the event-driven reconciler, which publish it in
// one coordinator entry that either removes when it drops the key). The
// replica is fenced, one holder drops every key at once, the other has
// dropped none when the replica is back in the same settled view. The
// slow holder must drop its keys too before either holds them again:
// before the fix it kept them (its hold was never stale), so the metrics
// stayed registered but unpublished, served by no replica, until their
// spec changed.
func TestShardHoldersDropTogether(t *testing.T) {
	ks := keys(40)
	s := NewShard("a")
	var notified []string
	s.Subscribe(func(k string) { notified = append(notified, k) })
	s.Update([]string{"a"}, true, nil)
	for _, k := range ks {
		if !s.Hold("poll", k) || !s.Hold("events", k) {
			t.Fatalf("a lone settled member does not serve %s", k)
		}
	}
	s.Update([]string{"a"}, false, nil) // fenced
	for _, k := range ks {
		if s.Hold("poll", k) {
			t.Fatalf("a fenced member still serves %s", k)
		}
		s.Release("poll", k)
	}
	s.Update([]string{"a"}, true, nil) // renewed again: same view, settled
	if _, member, settled := s.Status(); !member || !settled {
		t.Fatal("not settled after renewing again")
	}
	if got := s.Served(); got != 0 {
		t.Errorf("serves %d keys that one holder dropped, want none", got)
	}
	notified = nil
	for _, k := range ks {
		if !s.Stale("events", k) {
			t.Fatalf("the holder that kept %s is not told to look at it again", k)
		}
		if s.Hold("events", k) || s.Hold("poll", k) {
			t.Fatalf("%s is held again before every holder dropped it", k)
		}
		s.Release("events", k)
		if !slices.Contains(notified, k) {
			t.Fatalf("%s, dropped by every holder, was not sent back to them", k)
		}
		for _, h := range []string{"poll", "events"} {
			if !s.Stale(h, k) || !s.Hold(h, k) {
				t.Fatalf("%s: %s does not take it anew once every holder dropped it", h, k)
			}
		}
	}
	if got := s.Served(); got != len(ks) {
		t.Errorf("serves %d of %d keys after both holders took them anew", got, len(ks))
	}
	// One holder dropping a key it does not hold leaves the other's hold.
	s.Release("other", ks[0])
	if s.Stale("poll", ks[0]) || !s.Hold("events", ks[0]) {
		t.Error("a release by a holder that held nothing took the key from the others")
	}
	// A key released while this replica owns it (its object deleted) is
	// not drained: the other holder learns of the deletion itself, and
	// nothing is sent back to the holders, which would take it again.
	notified = nil
	s.Release("poll", ks[1])
	if s.Stale("events", ks[1]) || !s.Hold("events", ks[1]) || len(notified) > 0 {
		t.Errorf("a key released while owned was drained (notified %v)", notified)
	}
	s.Release("events", ks[1])
	if len(notified) > 0 {
		t.Errorf("a deleted key was sent back to its holders: %v", notified)
	}
}
