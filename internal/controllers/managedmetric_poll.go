package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/reason"
)

// poll reads every part of a polling ManagedMetric once and publishes the
// result; the event-driven path and this one share the parts, the
// aggregates and the source, so both modes give the same series.
func (r *ManagedMetricReconciler) poll(ctx context.Context, m *v1alpha1.ManagedMetric, src *managedSource, fresh bool) (ctrl.Result, error) {
	key, interval := src.update.Key, managedInterval(m)
	if src.broken != nil {
		r.Coordinator.SetError(key, m.Generation, src.broken)
		return ctrl.Result{}, nil
	}
	changed := fresh
	for _, p := range src.current() {
		start := time.Now()
		objs, err := r.Lister.List(ctx, p.mapping(), "", m.Spec.LabelSelector)
		switch reason.Of(err, "") {
		case v1alpha1.ReasonTargetNotFound:
			// The kind's CRD went away: the Watcher enqueues the metric,
			// which drops the kind; the other kinds go on.
			continue
		case v1alpha1.ReasonForbidden:
			// The operator may not read this kind: the others go on, and
			// the Ready message names it until it may.
			changed = changed || p.failure() == nil
			p.setFailure(err)
			continue
		}
		if err != nil {
			if !reason.Is(err) {
				return ctrl.Result{}, err
			}
			r.Coordinator.SetError(key, m.Generation, err)
			return ctrl.Result{RequeueAfter: min(interval, notFoundRetry)}, nil
		}
		changed = changed || p.failure() != nil
		p.setFailure(nil)
		c, err := replaceAll(key.String(), p.agg, objs)
		if err != nil {
			src.broken = err
			r.Coordinator.SetError(key, m.Generation, err)
			return ctrl.Result{}, nil
		}
		ctrl.LoggerFrom(ctx).V(1).Info("Metric polled", append([]any{"metric", key.String(),
			"objects", len(objs), "changed", c, "duration", time.Since(start).String()}, p.ik.LogValues()...)...)
		changed = changed || c
	}
	if parts, forbidden := readable(src.current()); len(parts) == 0 && forbidden != nil {
		r.Coordinator.SetError(key, m.Generation, forbidden)
		return ctrl.Result{RequeueAfter: min(interval, notFoundRetry)}, nil
	}
	if err := src.limitErr(src.current()); err != nil {
		// Over its limits: the next poll tries again from scratch.
		r.Coordinator.SetError(key, m.Generation, err)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	r.Coordinator.Publish(src.update, changed)
	return ctrl.Result{RequeueAfter: interval}, nil
}

// replaceAll evaluates a poll's objects into agg; a panic in evaluation
// is returned as the metric's error.
func replaceAll(id string, agg *evaluation.Aggregate, objs []map[string]any) (changed bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			changed, err = false, events.PanicError(id, "poll", p)
		}
	}()
	return agg.Replace(objs), nil
}

// mapping is how the Lister reads the part: its resource in the one
// version the metric reads, in all namespaces.
func (p *managedPart) mapping() *meta.RESTMapping {
	scope := meta.RESTScopeRoot
	if p.namespaced {
		scope = meta.RESTScopeNamespace
	}
	return &meta.RESTMapping{Resource: p.ik.GVR, GroupVersionKind: p.gvk, Scope: scope}
}
