package sharding

import (
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestMembershipServesOnlyOnceItsWatchDelivers feeds a Membership the
// Leases its watch would deliver: listed and renewed, but before the
// watch has delivered its own Lease, this replica cannot tell whom it has
// not seen yet and must serve nothing. Before the fix it counted itself
// alone, settled at once and claimed every key beside the others (seen
// for seconds when replicas start under load).
func TestMembershipServesOnlyOnceItsWatchDelivers(t *testing.T) {
	m, shard, err := New(Options{Client: &kubernetes.Clientset{}, Namespace: "ns", Identity: "b",
		LeaseDuration: 4 * time.Second, RenewInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m.synced = func() bool { return true }
	m.lastRenew = time.Now() // its own renewal was sent
	lease := func(id string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: m.opts.Group + "-" + id, Namespace: "ns"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(id), LeaseDurationSeconds: ptr.To(int32(4)),
				RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	}

	m.update(t.Context())
	if view, member, settled := shard.Status(); member || settled {
		t.Fatalf("before its watch delivered anything: members %v, member %t, settled %t; want no member", view, member, settled)
	}
	m.observe(lease("a"))
	m.update(t.Context())
	if view, member, settled := shard.Status(); member || settled {
		t.Fatalf("with another's Lease but not its own delivered: members %v, member %t, settled %t; want no member", view, member, settled)
	}
	m.observe(lease("b"))
	m.update(t.Context())
	if view, member, _ := shard.Status(); !member || !slices.Equal(view, []string{"a", "b"}) {
		t.Fatalf("once its own Lease came back: members %v, member %t; want a and b, member", view, member)
	}
}
