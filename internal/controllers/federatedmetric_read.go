package controllers

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/registry"
)

// watch makes every part of an event-driven metric subscribe to its
// cluster's shared watch, and keeps the watches running (a watch that
// failed is started again). It reports whether a cluster's state changed.
func (r *FederatedMetricReconciler) watch(ctx context.Context, src *fedSource) (changed bool) {
	interval := intervalOf(src.metric)
	src.busy.Store(false)
	for _, mb := range src.fan.Members() {
		p, key := mb.Part, mb.Cluster.Key
		conn, err := r.connect(src, p)
		if err != nil {
			r.retire(p, p.cur.Swap(nil))
			changed = src.fan.Fail(key, err) || changed
			continue
		}
		cur := p.reading()
		if cur == nil || cur.sub == nil || cur.conn != conn || limitRetryDue(cur.agg, interval) {
			src.fan.Restart(key)
			if cur, err = r.register(ctx, src, p, conn); errors.Is(err, clusters.ErrBusy) {
				src.busy.Store(true) // registered again shortly
				continue
			} else if err != nil {
				changed = src.fan.Fail(key, err) || changed
				continue
			}
			changed = true
		}
		if err := r.Informers.Ensure(cur.ik, cur.gvk, cur.sub); err != nil {
			changed = src.fan.Fail(key, clusterfault.Classify(err)) || changed
		}
	}
	return changed
}

// register subscribes a part to the shared watch of its cluster's target
// with a new aggregate, replacing its previous reading.
func (r *FederatedMetricReconciler) register(ctx context.Context, src *fedSource, p *fedPart, conn *clusters.Connection) (*fedReading, error) {
	ik, gvk, err := metricInformerKey(ctx, r.Clusters, src.metric, conn)
	if err != nil {
		return nil, err
	}
	src.setKind(gvk.Kind)
	key := p.cluster.Key
	agg := r.Guard.Aggregate(src.metric.Namespace, src.eval, src.metric.Spec.MaxSeries)
	sub := &registry.Subscription{
		ID:           p.id,
		Generation:   src.metric.Generation,
		Aggregate:    agg,
		MetadataOnly: src.eval.MetadataOnly(),
		OnSynced:     func() { src.synced(key) },
		OnChange:     func() { src.evaluate(false) },
		OnError:      func(err error) { src.failed(key, err) },
	}
	next := &fedReading{agg: agg, sub: sub, ik: ik, gvk: gvk, conn: conn}
	old := p.cur.Swap(next)
	if previous, moved := r.Registry.Register(ik, sub); moved {
		r.Informers.Release(previous)
	}
	if old != nil {
		old.agg.Close() // its subscription was replaced by Register
	}
	fedLog.Info("Metric registered for events", append([]any{"metric", p.id, "metadataOnly", sub.MetadataOnly}, ik.LogValues()...)...)
	return next, nil
}

// poll reads every cluster of a polling metric once, side by side, and
// publishes each as it is read.
func (r *FederatedMetricReconciler) poll(ctx context.Context, src *fedSource) (ctrl.Result, error) {
	interval := intervalOf(src.metric)
	next := interval
	if src.broken.Load() == nil {
		if pollClusters(ctx, src.federatedSource, interval, func(ctx context.Context, mb federation.Member[*fedPart]) (bool, bool) {
			return r.pollCluster(ctx, src, mb.Part)
		}) {
			next = busyRetry()
		}
	} else {
		src.evaluate(true)
	}
	if src.broken.Load() != nil {
		return ctrl.Result{}, nil // the spec must change first
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// pollCluster lists one cluster's objects into its part, within ctx's
// deadline. It reports whether the cluster's state changed and whether
// its series did.
func (r *FederatedMetricReconciler) pollCluster(ctx context.Context, src *fedSource, p *fedPart) (stateChanged, seriesChanged bool) {
	key := p.cluster.Key
	conn, err := r.connect(src, p)
	if err != nil {
		r.retire(p, p.cur.Swap(nil))
		return src.fan.Fail(key, err), false
	}
	cur := p.reading()
	if cur == nil || cur.conn != conn {
		src.fan.Restart(key)
		cur = &fedReading{agg: r.Guard.Aggregate(src.metric.Namespace, src.eval, src.metric.Spec.MaxSeries), conn: conn}
		r.retire(p, p.cur.Swap(cur))
	}
	m := src.metric
	var mapping *meta.RESTMapping
	var objs []map[string]any
	start := time.Now()
	// Through the gate, a cluster in back-off fails at once, and one that
	// hangs is left behind at the poll's bound.
	err = boundedRead(ctx, r.Clusters, conn, min(intervalOf(m), pollTimeout), func(ctx context.Context) error {
		mp, err := conn.Lister.Mapping(m.Spec.Target.GVK())
		if err != nil {
			return err
		}
		list, err := conn.Lister.List(ctx, mp, "", m.Spec.LabelSelector)
		mapping, objs = mp, list
		return err
	})
	if errors.Is(err, clusters.ErrBusy) {
		src.busy.Store(true) // read again shortly
		return false, false
	}
	if err != nil {
		return src.fan.Fail(key, clusterfault.Classify(err)), false
	}
	src.setKind(mapping.GroupVersionKind.Kind)
	changed, err := replaceAll(p.id, cur.agg, objs)
	if err != nil {
		src.broken.Store(&err)
		return true, false
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Metric polled", "metric", p.id, "cluster", p.cluster.Name,
		"resource", mapping.Resource.GroupResource().String(), "objects", len(objs), "changed", changed,
		"duration", time.Since(start).String())
	return src.fan.Synced(key), changed
}
