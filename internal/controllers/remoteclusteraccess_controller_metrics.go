package controllers

import (
	"cmp"
	"context"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/targets"
)

// metricConnection returns the connection a Metric reads through, held
// for user until released: the local cluster's, or that of its
// remoteClusterAccessRef. Without a Set (a reconciler assembled without
// clusters), only the local cluster can be read, through lister.
func metricConnection(set *clusters.Set, user string, m *v1alpha1.Metric, lister *targets.Lister, local string) (*clusters.Connection, error) {
	return connectionFor(set, user, m.Namespace, m.Spec.RemoteClusterAccessRef, lister, local)
}

// connectionFor is metricConnection for any kind of metric in namespace
// with the reference ref (nil: the local cluster).
func connectionFor(set *clusters.Set, user, namespace string, ref *v1alpha1.NamespacedReference, lister *targets.Lister,
	local string) (*clusters.Connection, error) {
	if set == nil {
		if ref != nil {
			return nil, reason.New(v1alpha1.ReasonClusterUnreachable,
				"spec.remoteClusterAccessRef is not supported by this operator's assembly; remove it to read the local cluster")
		}
		return &clusters.Connection{Key: local, Name: local, Lister: lister}, nil
	}
	key := set.Local().Key
	if ref != nil {
		key = ClusterKey(cmp.Or(ref.Namespace, namespace), ref.Name)
	}
	return set.Acquire(key, user)
}

// releaseConnection gives back what user holds.
func releaseConnection(set *clusters.Set, user string) {
	if set != nil {
		set.Release(user)
	}
}

// clusterSource re-reconciles the Metrics that reference a
// RemoteClusterAccess whenever its connection becomes usable or
// unusable, is renamed or rebuilt, so they follow at once rather than at
// their next recheck.
func clusterSource(set *clusters.Set, reader client.Reader) source.Source {
	return keySource(set.Subscribe, func(ctx context.Context, key string) []reconcile.Request {
		list := &v1alpha1.MetricList{}
		if err := reader.List(ctx, list); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			m := &list.Items[i]
			if refersTo(key, m.Namespace, m.Spec.RemoteClusterAccessRef) {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.Namespace, Name: m.Name}})
			}
		}
		return reqs
	})
}

// refersTo reports whether ref, in an object of namespace, names the
// RemoteClusterAccess whose connection key is key.
func refersTo(key, namespace string, ref *v1alpha1.NamespacedReference) bool {
	return ref != nil && key == ClusterKey(cmp.Or(ref.Namespace, namespace), ref.Name)
}

// keySource is a controller source that enqueues, whenever subscribe's
// callback is called with a key, the requests that requests maps it to.
func keySource(subscribe func(func(key string)), requests func(ctx context.Context, key string) []reconcile.Request) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		subscribe(func(key string) {
			if ctx.Err() != nil {
				return
			}
			for _, req := range requests(ctx, key) {
				q.Add(req)
			}
		})
		return nil
	})
}
