package sharding_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/internal/sharding"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// member is a Membership running against the test API server whose
// connection the test can cut.
type member struct {
	*sharding.Membership
	shard  *sharding.Shard
	cut    atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}
}

func startMember(t *testing.T, ns, id string) *member {
	t.Helper()
	mb := &member{done: make(chan struct{})}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if mb.cut.Load() {
				return nil, errors.New("connection cut by the test")
			}
			return rt.RoundTrip(r)
		})
	})
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mb.Membership, mb.shard, err = sharding.New(sharding.Options{Client: cs, Namespace: ns, Identity: id,
		LeaseDuration: 3 * time.Second, RenewInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	mb.cancel = cancel
	go func() {
		defer close(mb.done)
		_ = mb.Start(ctx)
	}()
	t.Cleanup(mb.stop)
	return mb
}

func (mb *member) stop() {
	mb.cancel()
	<-mb.done
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// waitView waits until s sees exactly members, settled, and returns when.
func waitView(t *testing.T, s *sharding.Shard, members ...string) time.Time {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		view, member, settled := s.Status()
		if !slices.Equal(view, members) || member != slices.Contains(members, s.Self()) || !settled {
			return errors.New("view " + s.Self() + ": " + view2str(view, member, settled))
		}
		return nil
	})
	return time.Now()
}

func view2str(view []string, member, settled bool) string {
	return fmt.Sprintf("members %v, member %t, settled %t", view, member, settled)
}

// TestMembershipOverTheAPIServer runs two members against a real API
// server: they settle on each other; one that leaves cleanly is gone from
// the other's view at once; one cut off from the API server stops serving
// (fences itself) before the other counts it gone, and its Lease is then
// deleted.
func TestMembershipOverTheAPIServer(t *testing.T) {
	testenv.Require(t, env)
	ns := fmt.Sprintf("membership-%d", time.Now().UnixNano()%1e6)
	if err := env.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	a, b := startMember(t, ns, "a"), startMember(t, ns, "b")
	waitView(t, a.shard, "a", "b")
	waitView(t, b.shard, "a", "b")
	lease := &coordinationv1.Lease{}
	if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "metrics-operator-a"}, lease); err != nil {
		t.Fatal(err)
	}
	if lease.Labels[sharding.GroupLabel] != "metrics-operator" || lease.Annotations[sharding.AppliedAnnotation] != a.shard.Applied() ||
		ptr.Deref(lease.Spec.HolderIdentity, "") != "a" || ptr.Deref(lease.Spec.LeaseDurationSeconds, 0) != 3 {
		t.Errorf("a's Lease: labels %v, annotations %v, spec %+v", lease.Labels, lease.Annotations, lease.Spec)
	}

	// A clean stop: b leaves, a takes over well within the lease duration.
	b.stop()
	left := time.Now()
	if err := b.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := waitView(t, a.shard, "a").Sub(left); d > 2*time.Second {
		t.Errorf("a saw b's release after %s, want well within the 3s lease duration", d)
	}

	// A member cut off from the API server fences itself before the other
	// counts it gone.
	c := startMember(t, ns, "c")
	waitView(t, c.shard, "a", "c")
	waitView(t, a.shard, "a", "c")
	cutAt := time.Now()
	c.cut.Store(true)
	var fenced time.Time
	testenv.Eventually(t, 30*time.Second, func() error {
		if _, member, _ := c.shard.Status(); member {
			return errors.New("c still serves")
		}
		fenced = time.Now()
		return nil
	})
	gone := waitView(t, a.shard, "a")
	t.Logf("cut off at 0s: fenced itself at %.2fs, counted gone by the other at %.2fs",
		fenced.Sub(cutAt).Seconds(), gone.Sub(cutAt).Seconds())
	if !fenced.Before(gone) {
		t.Errorf("c fenced itself %.2fs after the cut, a counted it gone at %.2fs: both served its keys",
			fenced.Sub(cutAt).Seconds(), gone.Sub(cutAt).Seconds())
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "metrics-operator-c"}, &coordinationv1.Lease{})
		if err == nil {
			return errors.New("the cut-off member's expired Lease is still there")
		}
		return nil
	})
}
