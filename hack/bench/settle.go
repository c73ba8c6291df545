package main

import (
	"context"
	"fmt"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// settleQuiet is how long the start's status writes and Events must have
// stopped before the steady window may begin.
const settleQuiet = 3 * time.Second

// waitStatusSettled waits (bounded by timeout) until the start's writes
// are out: every Metric of the scenario has a written Ready=True status
// with an observation, and the API server has seen no status PATCH and no
// Event for settleQuiet. The operator paces status writes
// (--status-write-qps), so at M = 1,000 the first Ready writes and their
// Events take tens of seconds after the values are correct; counted in
// the window they would be taken for per-event cost and steady-state
// writes. No background writes run meanwhile, so nothing else changes an
// event-driven metric's status. A polling metric records each poll in
// its status, so its PATCHes never stop: for polling (countPatches
// false) only the Ready statuses and the Events must be out. It returns
// the time it waited and whether it settled.
func (h *harness) waitStatusSettled(ctx context.Context, op *operatorProc, want int, countPatches bool, timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	deadline := start.Add(timeout)
	var (
		lastWrites float64
		quietSince time.Time
		problem    string
	)
	nextLog := time.Now().Add(15 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) && !op.exited() {
		ready, err := h.readyMetrics(ctx)
		if err != nil {
			problem = err.Error()
		} else if ready < want {
			problem = fmt.Sprintf("%d of %d metrics have a written Ready=True status with an observation", ready, want)
		}
		if snap, err := h.apiMetrics.snapshot(ctx); err == nil {
			writes := snap.requests["POST events"] + snap.requests["PATCH events"]
			if countPatches {
				writes += snap.requests["PATCH metrics/status"]
			}
			if writes != lastWrites || quietSince.IsZero() {
				lastWrites, quietSince = writes, time.Now()
			}
		}
		if err == nil && ready >= want {
			if quiet := time.Since(quietSince); quiet >= settleQuiet {
				return time.Since(start), true
			}
			problem = "status writes or Events still going out"
		}
		if time.Now().After(nextLog) {
			logf("  settling: %s", problem)
			nextLog = time.Now().Add(15 * time.Second)
		}
		sleepCtx(ctx, time.Second)
	}
	logf("  start's status writes not settled within %s: %s", timeout, problem)
	return time.Since(start), false
}

// readyMetrics counts the scenario's Metrics whose written status is
// Ready=True with an observation.
func (h *harness) readyMetrics(ctx context.Context) (int, error) {
	list := &v1alpha1.MetricList{}
	if err := h.c.List(ctx, list, client.InNamespace(metricsNamespace)); err != nil {
		return 0, err
	}
	n := 0
	for i := range list.Items {
		st := &list.Items[i].Status
		if apimeta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady) && !st.Observation.Timestamp.IsZero() {
			n++
		}
	}
	return n, nil
}
