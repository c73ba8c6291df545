package registry

import (
	"errors"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func key(ns string) InformerKey {
	return InformerKey{Cluster: "local", GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: ns}
}

func TestRegisterMovesAndReleases(t *testing.T) {
	r := New()
	a, b := key("a"), key("b")
	m1 := &Subscription{ID: "m1", MetadataOnly: true}
	m2 := &Subscription{ID: "m2", MetadataOnly: true}
	if _, moved := r.Register(a, m1); moved {
		t.Fatal("a first registration reported a move")
	}
	r.Register(a, m2)
	if n := len(r.Interested(a)); n != 2 {
		t.Fatalf("Interested(a) = %d subscriptions, want 2", n)
	}
	if r.NeedsFullObjects(a) {
		t.Fatal("two metadata-only metrics need full objects")
	}

	// m2 changes spec: the new subscription replaces the old one.
	m2full := &Subscription{ID: "m2"}
	if _, moved := r.Register(a, m2full); moved {
		t.Fatal("a re-registration on the same key reported a move")
	}
	if n := len(r.Interested(a)); n != 2 || !r.NeedsFullObjects(a) {
		t.Fatalf("after replacing m2: %d subscriptions, full=%v; want 2, true", n, r.NeedsFullObjects(a))
	}

	// m1 moves to another namespace: its old key is reported for release.
	prev, moved := r.Register(b, &Subscription{ID: "m1"})
	if !moved || prev != a {
		t.Fatalf("moving m1 reported (%v, %v), want (%v, true)", prev, moved, a)
	}
	if len(r.Interested(a)) != 1 || len(r.Interested(b)) != 1 {
		t.Fatalf("after the move: a=%d b=%d subscriptions, want 1 and 1", len(r.Interested(a)), len(r.Interested(b)))
	}

	if k, ok := r.Unregister("m2"); !ok || k != a {
		t.Fatalf("Unregister(m2) = %v, %v", k, ok)
	}
	if r.Interested(a) != nil {
		t.Fatal("a key without subscriptions still lists some")
	}
	if _, _, ok := r.Lookup("m2"); ok {
		t.Fatal("m2 still registered")
	}
	if _, ok := r.Unregister("m2"); ok {
		t.Fatal("a second Unregister succeeded")
	}
}

func TestMarkSyncedCallsOnSyncedOnce(t *testing.T) {
	calls := 0
	s := &Subscription{ID: "m", OnSynced: func() { calls++ }}
	s.MarkSynced()
	s.MarkSynced()
	if calls != 1 || !s.Synced() {
		t.Fatalf("OnSynced called %d times, synced=%v; want 1, true", calls, s.Synced())
	}
	s.Unsync()
	s.MarkSynced()
	if calls != 2 {
		t.Fatalf("after Unsync, OnSynced called %d times in all, want 2", calls)
	}
}

// TestReplacedAndDroppedSubscriptionsStaySilent: once Register replaced
// a subscription or Unregister dropped it, none of its callbacks runs,
// and Unregister waits for one that is running.
func TestReplacedAndDroppedSubscriptionsStaySilent(t *testing.T) {
	r := New()
	var calls []string
	sub := func(name string) *Subscription {
		return &Subscription{ID: "m",
			OnSynced: func() { calls = append(calls, name+" synced") },
			OnChange: func() { calls = append(calls, name+" changed") },
			OnError:  func(error) { calls = append(calls, name+" failed") }}
	}
	old, cur := sub("old"), sub("new")
	r.Register(key("a"), old)
	r.Register(key("a"), cur) // a rename: same metric, new spec
	old.MarkSynced()
	old.Changed()
	old.Fail(errors.New("x"))
	cur.MarkSynced()
	if old.Live() || !cur.Live() || !slices.Equal(calls, []string{"new synced"}) {
		t.Fatalf("live old=%v new=%v, calls %v; want only the new one's", old.Live(), cur.Live(), calls)
	}

	// Unregister waits for a running callback, and none runs after it.
	running, release := make(chan struct{}), make(chan struct{})
	slow := &Subscription{ID: "slow", OnSynced: func() { close(running); <-release }}
	r.Register(key("a"), slow)
	go slow.MarkSynced()
	<-running
	done := make(chan struct{})
	go func() { r.Unregister("slow"); close(done) }()
	select {
	case <-done:
		t.Fatal("Unregister returned while a callback ran")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-done
	slow.Unsync()
	slow.MarkSynced() // would close running again and panic
}

// TestDisableReportsOnce: a disabled subscription reports its error once,
// counts as synced (no fill is made for it) and keeps its reason when
// the watch fails later.
func TestDisableReportsOnce(t *testing.T) {
	var errs []string
	s := &Subscription{ID: "m", OnError: func(err error) { errs = append(errs, err.Error()) }}
	s.Disable(errors.New("panicked"))
	s.Disable(errors.New("again"))
	s.Fail(errors.New("watch failed"))
	if s.Active() || !s.Synced() || !slices.Equal(errs, []string{"panicked"}) {
		t.Fatalf("active=%v synced=%v errors %v", s.Active(), s.Synced(), errs)
	}
}

// TestUnlessRegistered runs its function only for metrics without a
// subscription.
func TestUnlessRegistered(t *testing.T) {
	r := New()
	r.Register(key("a"), &Subscription{ID: "events"})
	ran := 0
	if r.UnlessRegistered("events", func() { ran++ }) || ran != 0 {
		t.Fatal("ran for a registered metric")
	}
	if !r.UnlessRegistered("polling", func() { ran++ }) || ran != 1 {
		t.Fatal("did not run for an unregistered metric")
	}
}
