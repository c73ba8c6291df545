package controllers

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/SAP/metrics-operator/internal/coordinator"
)

// Shard decides which metrics this replica serves when metrics are
// sharded over replicas (internal/sharding). A nil Shard serves them all.
type Shard interface {
	// Hold reports whether this replica serves key, and records that
	// holder does until Release.
	Hold(holder, key string) bool
	// Release records that holder dropped key.
	Release(holder, key string)
	// Stale reports whether holder must look at key again: Hold (or
	// StandBy) would answer otherwise than what holder recorded.
	Stale(holder, key string) bool
	// StaleKeys returns the keys of keys that are Stale for holder.
	StaleKeys(holder string, keys []string) []string
	// Granted returns the keys of keys that Hold would grant now.
	Granted(keys []string) []string
	// StandBy reports whether holder should keep key ready to serve,
	// unpublished, since this replica may have to serve it next.
	StandBy(holder, key string) bool
	// Leads reports whether this replica writes the status of a shared
	// object (a DataSink, a cluster access) of key.
	Leads(key string) bool
	// Subscribe calls f whenever Hold's answers may have changed.
	Subscribe(f func(string))
}

// serves is the one ownership check of the metric reconcilers: a metric
// this replica does not serve is dropped like a deleted one (the caller
// does that, then calls released).
func serves(s Shard, holder string, key coordinator.Key) bool {
	return s == nil || s.Hold(holder, key.String())
}

// notServedYet is errUnsettled when this replica owns key in its current
// view but may serve it only once that view settles, nil otherwise. The
// reconcile that dropped key returns it, so that the startup gate waits
// for the metric to be registered rather than count it as having nothing
// to register; the shard sends key again once the view settles.
func notServedYet(s Shard, key coordinator.Key) error {
	if s != nil && s.Leads(key.String()) {
		return errUnsettled
	}
	return nil
}

// standsBy reports whether holder keeps key ready without serving it.
func standsBy(s Shard, holder string, key coordinator.Key) bool {
	return s != nil && s.StandBy(holder, key.String())
}

// released tells the shard that holder dropped key.
func released(s Shard, holder string, key coordinator.Key) {
	if s != nil {
		s.Release(holder, key.String())
	}
}

// leads reports whether this replica writes the status of the shared
// object of kind named name.
func leads(s Shard, kind string, name types.NamespacedName) bool {
	return s == nil || s.Leads(kind+"/"+name.Namespace+"/"+name.Name)
}

// shardSource enqueues, whenever the shard's view changes, the objects of
// list's kind that holder must serve or drop by the new view: of a
// thousand metrics the loss of one replica of three hands over some three
// hundred, and the others, which stay as they are, would only queue in
// front of those. A change of one key (another holder dropped it, or all
// did and it may be served again) enqueues that key alone. kind is the
// first part of the objects' keys (coordinator.Key).
//
// The list is made on a goroutine of the source's own, never in the
// shard's notification: a list from the manager's cache waits for its
// first sync (seconds with thousands of metrics), and the membership that
// notifies must go on judging Leases meanwhile. Changes that come while
// it lists are looked at in one more pass.
func shardSource(s Shard, holder, kind string, reader client.Reader, newList func() client.ObjectList) source.Source {
	return shardSourceAfter(s, holder, kind, reader, newList, nil)
}

// shardSourceAfter is shardSource that calls first, if set, on its own
// goroutine at every change before it looks for the stale objects: what
// first does is not slowed down by the reconciles of those.
func shardSourceAfter(s Shard, holder, kind string, reader client.Reader, newList func() client.ObjectList, first func()) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		changed := make(chan struct{}, 1)
		var mu sync.Mutex
		all, keys := false, map[string]struct{}{}
		s.Subscribe(func(key string) {
			mu.Lock()
			if key == "" {
				all = true
			} else if strings.HasPrefix(key, kind+"/") {
				keys[key] = struct{}{}
			}
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		})
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-changed:
				}
				if first != nil {
					first()
				}
				mu.Lock()
				listAll, some := all, keys
				all, keys = false, map[string]struct{}{}
				mu.Unlock()
				var reqs []reconcile.Request
				if listAll {
					reqs = staleRequests(ctx, s, holder, kind, reader, newList())
				} else {
					for _, key := range s.StaleKeys(holder, slices.Collect(maps.Keys(some))) {
						reqs = append(reqs, reconcile.Request{NamespacedName: keyName(kind, key)})
					}
				}
				addFirst(q, reqs)
			}
		}()
		return nil
	})
}

// shardPriority puts the metrics a change of view hands over ahead of
// the reconciler's other work (rechecks of the metrics it serves): a
// killed replica's metrics are unserved until they are registered here.
const shardPriority = 10

// addFirst adds reqs to q at once, ahead of the rest when q has
// priorities (controller-runtime's default queue).
func addFirst(q workqueue.TypedRateLimitingInterface[reconcile.Request], reqs []reconcile.Request) {
	if len(reqs) == 0 {
		return
	}
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(shardPriority)}, reqs...)
		return
	}
	for _, req := range reqs {
		q.Add(req)
	}
}

// keyName is the object name in key (kind/namespace/name).
func keyName(kind, key string) types.NamespacedName {
	ns, name, _ := strings.Cut(strings.TrimPrefix(key, kind+"/"), "/")
	return types.NamespacedName{Namespace: ns, Name: name}
}

// staleRequests lists list's kind and returns the objects whose hold by
// holder is stale.
func staleRequests(ctx context.Context, s Shard, holder, kind string, reader client.Reader, list client.ObjectList) []reconcile.Request {
	// Only names are read: the cache's objects need no copies (3,000
	// Metrics copied at every change of view cost a tenth of a second of
	// CPU while a takeover waits for it).
	if err := reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var keys []string
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		if obj, ok := o.(client.Object); ok {
			keys = append(keys, coordinator.Key{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}.String())
		}
		return nil
	})
	var reqs []reconcile.Request
	for _, key := range s.StaleKeys(holder, keys) {
		reqs = append(reqs, reconcile.Request{NamespacedName: keyName(kind, key)})
	}
	return reqs
}
