package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// shardSource enqueues every object of list's kind whenever the shard's
// view changes, so that each is served or dropped by the new view.
func shardSource(s Shard, reader client.Reader, newList func() client.ObjectList) source.Source {
	return keySource(s.Subscribe, func(ctx context.Context, _ string) []reconcile.Request {
		list := newList()
		if err := reader.List(ctx, list); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		_ = meta.EachListItem(list, func(o runtime.Object) error {
			if obj, ok := o.(client.Object); ok {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
			}
			return nil
		})
		return reqs
	})
}
