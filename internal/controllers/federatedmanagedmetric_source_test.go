package controllers

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/evaluation"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/reason"
)

// clusterWithObjects returns a part reading cluster c whose one managed
// kind holds n objects, reporting to fed.
func clusterWithObjects(t *testing.T, fed *fedManagedSource, c federation.Cluster, n int) *fedManagedPart {
	t.Helper()
	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	agg := evaluation.NewAggregate(e)
	objs := make([]map[string]any, n)
	for i := range objs {
		objs[i] = map[string]any{"metadata": map[string]any{"uid": fmt.Sprintf("%s-%d", c.Name, i), "name": fmt.Sprint(i)}}
	}
	agg.Replace(objs)
	p := &fedManagedPart{cluster: c, user: "fmm@" + c.Key}
	src := newManagedSource(p.user, &clusters.Connection{Key: c.Key, Name: c.Name, Remote: true}, 0)
	src.update = fed.update
	src.parts.Store(&[]*managedPart{{id: p.user + "/g/K", agg: agg}})
	src.report = clusterReport{fed: fed, part: p, src: src}
	p.cur.Store(src)
	return p
}

// TestFederatedManagedSourceOutage drives the clusters of a
// FederatedManagedMetric's source through what their reads report, and
// reads what is exported and the Ready condition the coordinator writes:
// a cluster read is published without waiting for the other; one that
// becomes unreachable is counted failed and keeps its last series for the
// grace period, then is withdrawn, and is exported again when it is read;
// a forbidden cluster is withdrawn at once; a report of a source the
// cluster no longer reads through is ignored.
func TestFederatedManagedSourceOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var written []metav1.Condition
		const grace = time.Minute
		fed := startFederatedSource[*fedManagedPart](t, "f", grace, promexport.NewCollector(), func(s coordinator.Status) {
			mu.Lock()
			written = append(written, s.Ready)
			mu.Unlock()
		})
		parts := map[string]*fedManagedPart{}
		fed.fan.Sync([]federation.Cluster{{Key: "ns/planes/ns/blue", Name: "blue"}, {Key: "ns/planes/ns/green", Name: "green"}},
			func(cl federation.Cluster) *fedManagedPart {
				parts[cl.Name] = clusterWithObjects(t, fed, cl, map[string]int{"blue": 1, "green": 2}[cl.Name])
				return parts[cl.Name]
			}, func(federation.Cluster, *fedManagedPart) {})
		report := func(name string) clusterReport { return parts[name].cur.Load().report.(clusterReport) }
		last := func() metav1.Condition {
			t.Helper()
			time.Sleep(time.Second)
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(written) == 0 {
				return metav1.Condition{}
			}
			return written[len(written)-1]
		}
		exported := func() []string {
			var out []string
			for _, cs := range fed.Snapshot() {
				for _, s := range cs.Series {
					out = append(out, fmt.Sprintf("%s=%d", cs.Cluster, s.Value))
				}
			}
			return out
		}
		check := func(step string, wantExported []string, status metav1.ConditionStatus, why, msg string, counts v1alpha1.FederatedObservation) {
			t.Helper()
			got := last()
			if got.Status != status || got.Reason != why || !strings.Contains(got.Message, msg) {
				t.Errorf("%s: Ready %s/%s %q, want %s/%s containing %q", step, got.Status, got.Reason, got.Message, status, why, msg)
			}
			if e := exported(); !slices.Equal(e, wantExported) {
				t.Errorf("%s: exported %v, want %v", step, e, wantExported)
			}
			if o := fed.observation(); o != counts {
				t.Errorf("%s: counts %+v, want %+v", step, o, counts)
			}
		}
		counts := func(active, failed, pending int32) v1alpha1.FederatedObservation {
			return v1alpha1.FederatedObservation{ActiveCount: active, FailedCount: failed, PendingCount: pending}
		}

		fed.evaluate(true) // a new metric's first reconcile
		check("start", nil, metav1.ConditionFalse, v1alpha1.ReasonPending, "waiting for the objects of 2 clusters", counts(0, 0, 2))
		report("blue").ready()
		check("blue read", []string{"blue=1"}, metav1.ConditionTrue, v1alpha1.ReasonReady, "1 clusters are not read yet", counts(1, 0, 1))
		report("green").ready()
		check("both read", []string{"blue=1", "green=2"}, metav1.ConditionTrue, v1alpha1.ReasonReady, "exporting 2 series", counts(2, 0, 0))

		report("blue").failed(reason.New(v1alpha1.ReasonClusterUnreachable, "blue is down"))
		check("blue unreachable", []string{"blue=1", "green=2"}, metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable,
			"1 of 2 clusters cannot be read: blue (ClusterUnreachable)", counts(1, 1, 0))
		time.Sleep(grace - 3*time.Second)
		check("blue within the grace period", []string{"blue=1", "green=2"}, metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable,
			"blue is down", counts(1, 1, 0))
		time.Sleep(2 * time.Second)
		check("blue after the grace period", []string{"green=2"}, metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable,
			"blue is down", counts(1, 1, 0))
		report("blue").ready()
		check("blue back", []string{"blue=1", "green=2"}, metav1.ConditionTrue, v1alpha1.ReasonReady, "exporting 2 series", counts(2, 0, 0))

		report("green").failed(reason.New(v1alpha1.ReasonForbidden, "green refuses"))
		check("green forbidden", []string{"blue=1"}, metav1.ConditionFalse, v1alpha1.ReasonForbidden,
			"1 of 2 clusters cannot be read: green (Forbidden)", counts(1, 1, 0))

		// A report of a source green no longer reads through is ignored.
		stale := report("green")
		parts["green"].cur.Store(newManagedSource("green", &clusters.Connection{Key: parts["green"].cluster.Key, Name: "green"}, 0))
		stale.ready()
		check("stale report", []string{"blue=1"}, metav1.ConditionFalse, v1alpha1.ReasonForbidden, "green refuses", counts(1, 1, 0))
		fed.fan.Close(func(federation.Cluster, *fedManagedPart) {})
	})
}
