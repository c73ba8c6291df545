package controllers

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/reason"
)

type noExport struct{}

func (noExport) Export(context.Context, string, *datasink.Target, []otlp.Metric) error { return nil }

// TestFederatedManagedSourcePhases drives the clusters of a federated
// source through their phases and reads the Ready condition the
// coordinator writes: nothing before every cluster was read or failed
// once, Ready with the failed clusters named while one is read, the first
// failure when none is, Ready again when one comes back.
func TestFederatedManagedSourcePhases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var written []metav1.Condition
		c, err := coordinator.New(coordinator.Options{MinExportInterval: time.Hour, StatusInterval: time.Millisecond,
			Sinks: datasink.NewStore(), Exporter: noExport{}, Prometheus: promexport.NewCollector(),
			StatusWriters: map[string]coordinator.StatusWriter{federatedManagedMetricKind: coordinator.StatusWriterFunc(
				func(_ context.Context, _ coordinator.Key, s coordinator.Status) error {
					mu.Lock()
					written = append(written, s.Ready)
					mu.Unlock()
					return nil
				})}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { _ = c.Start(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		key := coordinator.Key{Kind: federatedManagedMetricKind, Namespace: "ns", Name: "f"}
		fed := &federatedManagedSource{coord: c, clusters: map[string]*federatedCluster{}}
		fed.update = coordinator.Update{Key: key, Name: "f", Interval: time.Hour, Mode: v1alpha1.ModeEventDriven,
			Sink: coordinator.SinkRef{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "none"}}, Source: fed}
		report := map[string]clusterReport{}
		for _, name := range []string{"blue", "green"} {
			src := newManagedSource(name, &clusters.Connection{Key: "ns/a/ns/" + name, Name: name, Remote: true}, 0)
			src.update = fed.update
			report[name] = clusterReport{fed: fed, key: src.clusterKey, src: src}
			src.report = report[name]
			fed.install(src.clusterKey, name, src)
		}
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
		unreachable := reason.New(v1alpha1.ReasonClusterUnreachable, "blue is down")

		report["blue"].ready()
		if got := last(); got.Reason != "" {
			t.Fatalf("written %+v while green was pending", got)
		}
		report["green"].failed(reason.New(v1alpha1.ReasonForbidden, "green refuses"))
		if got := last(); got.Status != metav1.ConditionTrue || !strings.Contains(got.Message, "1 of 2 clusters cannot be read and are left out: green (Forbidden)") {
			t.Fatalf("one of two failed: %+v", got)
		}
		if o := fed.counts(); o.ActiveCount != 1 || o.FailedCount != 1 || o.PendingCount != 0 {
			t.Errorf("counts %+v", o)
		}
		report["blue"].failed(unreachable)
		if got := last(); got.Status != metav1.ConditionFalse || got.Reason != v1alpha1.ReasonClusterUnreachable ||
			!strings.Contains(got.Message, "none of the 2 clusters can be read") {
			t.Fatalf("both failed: %+v", got)
		}
		report["green"].ready()
		if got := last(); got.Status != metav1.ConditionTrue || !strings.Contains(got.Message, "blue (ClusterUnreachable)") {
			t.Fatalf("green back: %+v", got)
		}
		// A report of a source the cluster no longer has is ignored.
		fed.install(report["green"].key, "green", newManagedSource("green", &clusters.Connection{Key: report["green"].key, Name: "green"}, 0))
		report["green"].ready()
		if o := fed.counts(); o.PendingCount != 1 || o.FailedCount != 1 {
			t.Errorf("counts %+v after a stale report", o)
		}
	})
}
