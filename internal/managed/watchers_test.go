package managed_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/SAP/metrics-operator/internal/managed"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestWatchersShareOneWatchPerCluster: users of one cluster share one
// Watcher, started when acquired before or after the set starts; its
// changes are told with the cluster's key; a new client (a rebuilt
// connection) restarts it for every user; the last release stops it, and
// a user acquiring another cluster lets go of the first.
func TestWatchersShareOneWatchPerCluster(t *testing.T) {
	testenv.Require(t, env)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	s := managed.NewWatchers()
	var mu sync.Mutex
	var told []string
	s.Subscribe(func(key string) {
		mu.Lock()
		told = append(told, key)
		mu.Unlock()
	})
	a := s.Acquire("a", "ns/blue", "blue", dyn) // before Start
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	if b := s.Acquire("b", "ns/blue", "blue", dyn); b != a {
		t.Fatal("two users of one cluster got two Watchers")
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !a.Synced() || !slices.Contains(told, "ns/blue") {
			return fmt.Errorf("synced %v, told %v", a.Synced(), told)
		}
		return nil
	})

	buckets := crd("s3.watchers.test", "Bucket", "buckets", "crossplane", "managed")
	if err := env.Client.Create(t.Context(), buckets); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), buckets) })
	testenv.Eventually(t, 30*time.Second, func() error {
		if len(a.Kinds()) == 0 {
			return fmt.Errorf("the new managed kind is not seen")
		}
		return nil
	})

	// A rebuilt connection's client restarts the Watcher for both users.
	other, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Acquire("a", "ns/blue", "blue", other)
	if c == a || s.Acquire("b", "ns/blue", "blue", other) != c {
		t.Fatal("a new client did not replace the Watcher for every user")
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if !c.Synced() || len(c.Kinds()) == 0 {
			return fmt.Errorf("the restarted Watcher has not listed")
		}
		return nil
	})

	// b moves to another cluster; a's release stops blue's Watcher.
	s.Acquire("b", "ns/green", "green", dyn)
	if got := s.Active(); !slices.Equal(got, []string{"ns/blue", "ns/green"}) {
		t.Errorf("active %v, want blue and green", got)
	}
	s.Release("a")
	if got := s.Active(); !slices.Equal(got, []string{"ns/green"}) {
		t.Errorf("active %v after blue's last user left, want green", got)
	}
	s.Release("b")
	s.Release("b")
	if got := s.Active(); len(got) != 0 {
		t.Errorf("active %v after every user left", got)
	}
}
