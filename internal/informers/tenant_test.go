package informers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// tenantOf charges a cluster "namespace/access" to its namespace, as the
// operator does; "local" to nobody.
func tenantOf(cluster string) string {
	ns, _, remote := strings.Cut(cluster, "/")
	if !remote {
		return ""
	}
	return ns
}

// newClusterProbe is newLimitProbe for a watch of cluster.
func newClusterProbe(t *testing.T, reg *registry.Registry, m *informers.Manager, id, cluster, ns string) *limitProbe {
	t.Helper()
	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	p := &limitProbe{key: registry.InformerKey{Cluster: cluster,
		GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: ns}}
	p.sub = &registry.Subscription{ID: id, Aggregate: evaluation.NewAggregate(e), MetadataOnly: true,
		OnSynced: func() { p.mu.Lock(); p.synced++; p.lastErr = nil; p.mu.Unlock() },
		OnError:  func(err error) { p.mu.Lock(); p.lastErr = err; p.mu.Unlock() }}
	reg.Register(p.key, p.sub)
	p.ensure(t, m)
	return p
}

// waitTenantLimit waits, ensuring the watch as the reconciler would, until
// the probe reports TenantLimitExceeded and holds nothing, and returns
// the message.
func (p *limitProbe) waitTenantLimit(t *testing.T, m *informers.Manager) (message string) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() error {
		p.ensure(t, m)
		_, err := p.state()
		if reason.Of(err, "") != v1alpha1.ReasonTenantLimitExceeded {
			return fmt.Errorf("%s: error %w, want TenantLimitExceeded", p.sub.ID, err)
		}
		if n := p.sub.Aggregate.Len(); n != 0 {
			return fmt.Errorf("%s holds %d objects over its tenant's limit, want none", p.sub.ID, n)
		}
		message = err.Error()
		return nil
	})
	return message
}

// leave is what the reconciler does when the probe's metric is deleted.
func (p *limitProbe) leave(reg *registry.Registry, m *informers.Manager) {
	if key, ok := reg.Unregister(p.sub.ID); ok {
		m.Release(key)
	}
}

// TestTenantWatchLimit runs a Manager with MaxWatchesPerTenant 2: tenant
// "ta" gets two watches and its third is not started, its metric
// reporting TenantLimitExceeded naming the flag and the namespace, while
// tenant "tb" and the local cluster watch the same resource beside it.
// Once one of ta's watches is released, the refused one starts at its
// next recheck and fills its metric.
func TestTenantWatchLimit(t *testing.T) {
	testenv.Require(t, env)
	for i := range 3 {
		createConfigMaps(t, fmt.Sprint("tenant-w-", i), 3+i)
	}
	dyn, md := clientsFor(t, env.Config)
	reg := registry.New()
	m := newManager(t, reg, &informers.Clients{Dynamic: dyn, Metadata: md, ReportUnreachable: true},
		informers.Options{TenantOf: tenantOf, MaxWatchesPerTenant: 2})
	startManager(t, m)

	first := newClusterProbe(t, reg, m, "a0", "ta/acc", "tenant-w-0")
	second := newClusterProbe(t, reg, m, "a1", "ta/acc", "tenant-w-1")
	first.waitHolds(t, m, 3)
	second.waitHolds(t, m, 4)
	third := newClusterProbe(t, reg, m, "a2", "ta/acc", "tenant-w-2")
	msg := third.waitTenantLimit(t, m)
	t.Logf("refused: %s", msg)
	for _, want := range []string{"--max-remote-watches-per-namespace", "namespace ta", "2 watches", "configmaps in namespace tenant-w-2", "cluster ta/acc"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message does not name %q: %s", want, msg)
		}
	}
	newClusterProbe(t, reg, m, "b2", "tb/acc", "tenant-w-2").waitHolds(t, m, 5)
	newClusterProbe(t, reg, m, "l2", "local", "tenant-w-2").waitHolds(t, m, 5)
	// A second metric of a watch ta has already joins it.
	joined := newClusterProbe(t, reg, m, "a0-too", "ta/acc", "tenant-w-0")
	joined.waitHolds(t, m, 3)

	first.leave(reg, m)
	if _, err := third.state(); reason.Of(err, "") != v1alpha1.ReasonTenantLimitExceeded {
		t.Errorf("with a metric left on each of ta's watches, the third reports %v, want TenantLimitExceeded", err)
	}
	joined.leave(reg, m)
	third.waitHolds(t, m, 5)
	second.waitHolds(t, m, 4)
}

// TestTenantObjectLimit runs a Manager with MaxObjectsPerTenant 100,
// streamed and paged: tenant "ta" watches 60 ConfigMaps through two
// clusters; one watch holds them and takes changes, the other stops, its
// metric reporting TenantLimitExceeded naming the flag, and stays stopped
// through its retries, while tenant "tb" and the local cluster hold the
// same 60 beside them. Once ta's serving metric is deleted, the stopped
// watch's next try fills its metric.
func TestTenantObjectLimit(t *testing.T) {
	testenv.Require(t, env)
	for _, paged := range []bool{false, true} {
		t.Run(map[bool]string{false: "streamed", true: "paged"}[paged], func(t *testing.T) {
			ns := map[bool]string{false: "tenant-o-s", true: "tenant-o-p"}[paged]
			createConfigMaps(t, ns, 60)
			cfg := rest.CopyConfig(env.Config)
			if paged {
				cfg.Wrap(refuseStreamedLists)
			}
			dyn, md := clientsFor(t, cfg)
			reg := registry.New()
			m := newManager(t, reg, &informers.Clients{Dynamic: dyn, Metadata: md, ReportUnreachable: true},
				informers.Options{TenantOf: tenantOf, MaxObjectsPerTenant: 100, ListPageSize: 10, RetryAfterObjectLimit: 500 * time.Millisecond})
			startManager(t, m)

			in := newClusterProbe(t, reg, m, "in", "ta/a", ns)
			in.waitHolds(t, m, 60)
			out := newClusterProbe(t, reg, m, "out", "ta/b", ns)
			msg := out.waitTenantLimit(t, m)
			t.Logf("stopped: %s", msg)
			for _, want := range []string{"--max-remote-objects-per-namespace", "100 objects", "namespace ta", "configmaps in namespace " + ns, "cluster ta/b"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the message does not name %q: %s", want, msg)
				}
			}
			newClusterProbe(t, reg, m, "other", "tb/a", ns).waitHolds(t, m, 60)
			newClusterProbe(t, reg, m, "local", "local", ns).waitHolds(t, m, 60)

			if err := env.Client.Create(t.Context(), &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "cm-60", Namespace: ns}}); err != nil {
				t.Fatal(err)
			}
			in.waitHolds(t, m, 61)
			// Its retries every 500 ms meet the same limit.
			for range 4 {
				time.Sleep(500 * time.Millisecond)
				out.ensure(t, m)
			}
			_ = out.waitTenantLimit(t, m)

			in.leave(reg, m)
			out.waitHolds(t, m, 61)
		})
	}
}
