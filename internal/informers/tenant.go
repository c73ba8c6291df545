package informers

import (
	"sync/atomic"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
)

// The limits of one watch (limit.go) do not bound a tenant: whoever may
// create cluster accesses and metrics can open as many watches of API
// servers they run as they like, each holding up to MaxObjects objects,
// and the operator's memory grows with the product until it is killed,
// taking /metrics down for everyone. So the watches of remote clusters
// are charged to a tenant, the namespace of the access that defines
// their cluster (Options.TenantOf), and bounded per tenant:
//
//   - Options.MaxWatchesPerTenant (--max-remote-watches-per-namespace):
//     a watch the tenant's metrics need beyond it is not started, and its
//     metrics report TenantLimitExceeded. Ensure admits it again at each
//     of their rechecks, so it starts by itself once the tenant needs
//     fewer watches.
//   - Options.MaxObjectsPerTenant (--max-remote-objects-per-namespace):
//     each remote watch charges its tenant with the objects it holds (or
//     its current list has read so far); the watch whose objects take the
//     tenant's sum over the limit stops like a watch over MaxObjects, its
//     metrics reporting TenantLimitExceeded, and the tenant's other
//     watches go on.
//
// The local cluster's watches are shared by every tenant and its size is
// the platform's, so they are charged to nobody.

// tenant is what the remote watches of one tenant hold together.
type tenant struct {
	name string
	// objects is the sum of the charges of the tenant's watches.
	objects atomic.Int64
}

// tenantOf returns the tenant a watch of cluster is charged to, "" for
// none.
func (m *Manager) tenantOf(cluster string) string {
	if m.opts.TenantOf == nil {
		return ""
	}
	return m.opts.TenantOf(cluster)
}

// admitLocked returns the tenant a new watch of key is charged to (nil:
// none), or a TenantLimitExceeded error when the tenant has its most
// watches already. Called with m.mu held, before the watch is added to
// m.informers.
func (m *Manager) admitLocked(key registry.InformerKey) (*tenant, error) {
	name := m.tenantOf(key.Cluster)
	if name == "" {
		return nil, nil
	}
	if limit := m.opts.MaxWatchesPerTenant; limit > 0 {
		n := 0
		for k := range m.informers {
			if k != key && m.tenantOf(k.Cluster) == name {
				n++
			}
		}
		if n >= limit {
			return nil, reason.New(v1alpha1.ReasonTenantLimitExceeded,
				"the watch of %s in cluster %s is not started: the accesses of namespace %s have %d watches of remote clusters already, "+
					"the limit set by the operator's --max-remote-watches-per-namespace, so the metric exports nothing; it starts by itself "+
					"once the namespace needs fewer (delete metrics or cluster accesses it no longer needs, or read resources already watched), "+
					"or ask the platform admin to raise the flag",
				watchedWhat(key), key.Cluster, name, limit)
		}
	}
	t := m.tenants[name]
	if t == nil {
		t = &tenant{name: name}
		m.tenants[name] = t
	}
	return t, nil
}

// charge records that the watch holds, or its current list has read so
// far, n objects, and reports whether that takes its tenant's watches
// over MaxObjectsPerTenant together. If so, the watch is the one to stop
// (tenantOver) and gives its charge back at once: what it holds is
// dropped as it stops, and the tenant's other watches, listing beside it,
// must not be stopped for objects about to go.
func (i *informer) charge(n int) bool {
	if i.tenant == nil {
		return false
	}
	if i.tenantOver.Load() {
		return n > 0 // stopping: it may hold nothing more
	}
	total := i.tenant.objects.Add(int64(n) - i.charged.Swap(int64(n)))
	if i.maxTenantObjects > 0 && n > 0 && total > int64(i.maxTenantObjects) {
		i.tenantOver.Store(true)
		i.tenant.objects.Add(-i.charged.Swap(0))
		return true
	}
	return false
}

// tenantOverErr is the error the metrics of a watch stopped by its
// tenant's object limit report.
func (i *informer) tenantOverErr() error {
	return reason.New(v1alpha1.ReasonTenantLimitExceeded,
		"the watch of %s in cluster %s is stopped: the watches of remote clusters whose accesses are in namespace %s would hold more than %d objects together, "+
			"the limit set by the operator's --max-remote-objects-per-namespace, so its metrics export nothing; it is tried again every %s and "+
			"the metrics come back by themselves once the namespace's remote watches hold fewer objects (delete metrics or cluster accesses it no "+
			"longer needs), or ask the platform admin to raise the flag",
		watchedWhat(i.key), i.key.Cluster, i.tenant.name, i.maxTenantObjects, i.retryAfterLimit)
}

// watchedWhat names the resource and namespace scope of a watch for
// messages.
func watchedWhat(key registry.InformerKey) string {
	what := key.GVR.GroupResource().String()
	if key.Namespace != "" {
		what += " in namespace " + key.Namespace
	}
	return what
}
