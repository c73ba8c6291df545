package controllers

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/reason"
)

type noExport struct{}

func (noExport) Export(context.Context, string, *datasink.Target, []otlp.Metric) error { return nil }

// stubPart is a cluster's part that holds one series once read.
type stubPart struct{ value atomic.Int64 }

func (p *stubPart) series() ([]evaluation.Series, bool) {
	if v := p.value.Load(); v > 0 {
		return []evaluation.Series{{Value: v}}, true
	}
	return nil, false
}
func (p *stubPart) warning() string    { return "" }
func (p *stubPart) load() (int, error) { return 1, nil }

// startFederatedSource returns the federated source of a metric named
// name, with parts P and the grace period grace, and starts its
// coordinator (until the test ends): it serves /metrics through prom and
// hands each status it writes to write (nil: drops them).
func startFederatedSource[P federatedPart](t *testing.T, name string, grace time.Duration, prom *promexport.Collector,
	write func(coordinator.Status)) *federatedSource[P] {
	t.Helper()
	c, err := coordinator.New(coordinator.Options{MinExportInterval: time.Hour, StatusInterval: time.Millisecond,
		Sinks: datasink.NewStore(), Exporter: noExport{}, Prometheus: prom,
		StatusWriters: map[string]coordinator.StatusWriter{federatedManagedMetricKind: coordinator.StatusWriterFunc(
			func(_ context.Context, _ coordinator.Key, s coordinator.Status) error {
				if write != nil {
					write(s)
				}
				return nil
			})}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	fed := newFederatedSource[P](c, grace, 0, "ns/planes")
	fed.update = coordinator.Update{Key: coordinator.Key{Kind: federatedManagedMetricKind, Namespace: "ns", Name: name},
		Name: name, Interval: time.Hour, Mode: v1alpha1.ModeEventDriven,
		Sink: coordinator.SinkRef{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "none"}}, Source: fed}
	return fed
}

// TestPollClustersSideBySide polls ten clusters, one of which never
// answers: the others are read at most probeParallelism at once and are
// on /metrics while the slow one still waits; the slow one is given up at
// the poll's deadline and counted failed.
func TestPollClustersSideBySide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := promexport.NewCollector()
		fed := startFederatedSource[*stubPart](t, "side_by_side", time.Minute, prom, nil)
		var clusters []federation.Cluster
		for i := range 10 {
			clusters = append(clusters, federation.Cluster{Key: fmt.Sprint("k", i), Name: fmt.Sprint("c", i)})
		}
		fed.fan.Sync(clusters, func(federation.Cluster) *stubPart { return &stubPart{} }, func(federation.Cluster, *stubPart) {})

		var running, most atomic.Int32
		read := func(ctx context.Context, m federation.Member[*stubPart]) (bool, bool) {
			n := running.Add(1)
			defer running.Add(-1)
			for old := most.Load(); n > old && !most.CompareAndSwap(old, n); old = most.Load() {
			}
			if m.Cluster.Name == "c0" {
				<-ctx.Done() // a cluster that never answers
				return fed.fan.Fail(m.Cluster.Key, reason.New(v1alpha1.ReasonClusterUnreachable, "no answer")), false
			}
			time.Sleep(time.Second)
			m.Part.value.Store(1)
			return fed.fan.Synced(m.Cluster.Key), true
		}
		const interval = 10 * time.Second
		polled := make(chan struct{})
		start := time.Now()
		go func() { pollClusters(t.Context(), fed, interval, read); close(polled) }()

		time.Sleep(5 * time.Second)
		synctest.Wait()
		select {
		case <-polled:
			t.Fatal("the poll did not wait for the cluster that never answers")
		default:
		}
		fams, err := prom.Gather()
		if err != nil {
			t.Fatal(err)
		}
		exported := 0
		for _, f := range fams {
			if f.GetName() == "side_by_side" {
				exported = len(f.GetMetric())
			}
		}
		if exported != 9 {
			t.Errorf("%d clusters on /metrics while one cluster does not answer, want the 9 that did", exported)
		}
		if got := most.Load(); got != probeParallelism {
			t.Errorf("at most %d clusters read at once, want %d", got, probeParallelism)
		}
		<-polled
		if took := time.Since(start); took != interval {
			t.Errorf("the poll took %v, want the interval %v (the slow cluster's deadline)", took, interval)
		}
		if got := fed.fan.Counts(); got != (federation.Counts{Active: 9, Failed: 1}) {
			t.Errorf("counts %+v, want 9 active and 1 failed", got)
		}
		fed.fan.Close(func(federation.Cluster, *stubPart) {})
	})
}
