package controllers

import (
	"cmp"
	"context"
	"strings"

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
	ref := m.Spec.RemoteClusterAccessRef
	if set == nil {
		if ref != nil {
			return nil, reason.New(v1alpha1.ReasonClusterUnreachable,
				"spec.remoteClusterAccessRef is not supported by this operator's assembly; remove it to read the local cluster")
		}
		return &clusters.Connection{Key: local, Name: local, Lister: lister}, nil
	}
	key := set.Local().Key
	if ref != nil {
		key = ClusterKey(cmp.Or(ref.Namespace, m.Namespace), ref.Name)
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
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		set.Subscribe(func(key string) {
			ns, name, ok := strings.Cut(key, "/")
			if !ok || ctx.Err() != nil {
				return
			}
			list := &v1alpha1.MetricList{}
			if err := reader.List(ctx, list); err != nil {
				return
			}
			for i := range list.Items {
				m := &list.Items[i]
				if ref := m.Spec.RemoteClusterAccessRef; ref != nil && ref.Name == name && cmp.Or(ref.Namespace, m.Namespace) == ns {
					q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.Namespace, Name: m.Name}})
				}
			}
		})
		return nil
	})
}
