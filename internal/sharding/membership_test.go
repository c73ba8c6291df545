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
// connection the test can cut or slow down.
type member struct {
	*sharding.Membership
	shard *sharding.Shard
	cut   atomic.Bool
	// slow delays every write of its Lease (nanoseconds).
	slow   atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
}

func startMember(t *testing.T, ns, id string) *member {
	t.Helper()
	return startMemberLease(t, ns, id, memberLease)
}

func startMemberLease(t *testing.T, ns, id string, lease time.Duration) *member {
	t.Helper()
	mb := &member{done: make(chan struct{})}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if mb.cut.Load() {
				return nil, errors.New("connection cut by the test")
			}
			if d := time.Duration(mb.slow.Load()); d > 0 && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return nil, r.Context().Err()
				}
			}
			return rt.RoundTrip(r)
		})
	})
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mb.Membership, mb.shard, err = sharding.New(sharding.Options{Client: cs, Namespace: ns, Identity: id,
		LeaseDuration: lease, RenewInterval: time.Second})
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

// memberLease is the test members' lease duration; they renew every
// second, so they fence themselves 2 s after their last renewal.
const memberLease = 4 * time.Second

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
		ptr.Deref(lease.Spec.HolderIdentity, "") != "a" || ptr.Deref(lease.Spec.LeaseDurationSeconds, 0) != int32(memberLease/time.Second) {
		t.Errorf("a's Lease: labels %v, annotations %v, spec %+v", lease.Labels, lease.Annotations, lease.Spec)
	}

	// A clean stop: b leaves, a takes over well within the lease duration.
	b.stop()
	left := time.Now()
	if err := b.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := waitView(t, a.shard, "a").Sub(left); d > 2*time.Second {
		t.Errorf("a saw b's release after %s, want well within the %s lease duration", d, memberLease)
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

// TestMembershipSurvivesSlowRenewals slows every write of a member's
// Lease to 1.2 s, more than the renew interval but well within the 4 s
// between a renewal and the fencing deadline it sets (lease duration 6 s,
// renewals every second, as TestShardingOverThreeReplicas runs them). The
// member must stay a member throughout: each renewal that comes back
// counts from when it was sent. Before the fix a renewal was cancelled
// after one interval, every one failed, and the member fenced itself and
// dropped everything it served, as replicas did under load.
func TestMembershipSurvivesSlowRenewals(t *testing.T) {
	testenv.Require(t, env)
	ns := fmt.Sprintf("slow-%d", time.Now().UnixNano()%1e6)
	if err := env.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	a := startMemberLease(t, ns, "a", 6*time.Second)
	waitView(t, a.shard, "a")
	lost := 0
	a.shard.Subscribe(func(string) {
		if _, member, _ := a.shard.Status(); !member {
			lost++
		}
	})
	a.slow.Store(int64(1200 * time.Millisecond))
	time.Sleep(10 * time.Second)
	a.slow.Store(0)
	if _, member, _ := a.shard.Status(); !member || lost > 0 {
		t.Errorf("with renewals taking 1.2s the member lost its membership %d times (member now: %t), want never", lost, member)
	}
}

// TestNewRejectsLeaseOfThreeRenewals: with a lease of three renew
// intervals a member fenced itself for the round trip of every renewal.
func TestNewRejectsLeaseOfThreeRenewals(t *testing.T) {
	for _, tc := range []struct {
		lease, renew time.Duration
		ok           bool
	}{
		{3 * time.Second, time.Second, false},
		{4 * time.Second, time.Second, true},
		{15 * time.Second, 2 * time.Second, true},
		{7 * time.Second, 2 * time.Second, false},
		{4500 * time.Millisecond, time.Second, false},
	} {
		_, _, err := sharding.New(sharding.Options{Client: &kubernetes.Clientset{}, Namespace: "ns", Identity: "a",
			LeaseDuration: tc.lease, RenewInterval: tc.renew})
		if (err == nil) != tc.ok {
			t.Errorf("lease %s, renewals every %s: error %v, want ok %t", tc.lease, tc.renew, err, tc.ok)
		}
	}
}

// TestLeaveDuringARenewal stops a member while a renewal of its Lease is
// in flight (its writes take 1.5 s): Leave must still delete the Lease, so
// that the others take over at once. Before the fix the cancelled renewal
// had forgotten the Lease and Leave deleted nothing: the others waited for
// it to expire.
func TestLeaveDuringARenewal(t *testing.T) {
	testenv.Require(t, env)
	ns := fmt.Sprintf("leave-%d", time.Now().UnixNano()%1e6)
	if err := env.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	a := startMemberLease(t, ns, "a", 6*time.Second)
	waitView(t, a.shard, "a")
	a.slow.Store(int64(1500 * time.Millisecond))
	time.Sleep(2 * time.Second) // a renewal is on its way now
	a.stop()
	if err := a.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "metrics-operator-a"}, &coordinationv1.Lease{})
	if err == nil {
		t.Fatal("the Lease of a member that left is still there")
	}
}
