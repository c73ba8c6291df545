package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
)

// wideSource is a Source with n series of 32 dimensions of 1,000 bytes
// each: what a tenant's metric may have within the default limits.
type wideSource struct{ n int }

func (s wideSource) Snapshot() []ClusterSeries {
	series := make([]evaluation.Series, s.n)
	for i := range series {
		dims := make([]evaluation.Dimension, 32)
		for j := range dims {
			dims[j] = evaluation.Dimension{Name: fmt.Sprint("d", j), Value: fmt.Sprintf("%04d%s", i, strings.Repeat("x", 996))}
		}
		series[i] = evaluation.Series{Dimensions: dims, Value: 1}
	}
	return []ClusterSeries{{Cluster: "local", Series: series}}
}

func (wideSource) Warning() string { return "" }

// TestLargeMetricLeavesItsSinkWorking pushes a tenant's metric of 700
// series with 32 KB of labels each (22 MB) and a neighbour's metric to one
// DataSink, a real OTLP receiver with its default limits (4 MiB per gRPC
// message, 20 MiB per HTTP request): both metrics arrive, every series of
// the large one included. Before, both went in one request, which the
// receiver refused, so the neighbour's metric never arrived either.
func TestLargeMetricLeavesItsSinkWorking(t *testing.T) {
	const wide = 700
	for _, protocol := range []datasink.Protocol{datasink.ProtocolGRPC, datasink.ProtocolHTTP} {
		t.Run(string(protocol), func(t *testing.T) {
			sink := otlpsink.Start(t)
			target := &datasink.Target{Protocol: protocol, Endpoint: sink.GRPCAddr(), Insecure: true, Fingerprint: "x"}
			if protocol == datasink.ProtocolHTTP {
				target.Endpoint, target.URLPath = sink.HTTPAddr(), "/v1/metrics"
			}
			nn := types.NamespacedName{Namespace: "ns", Name: "sink"}
			sinks := datasink.NewStore()
			sinks.Set(nn, target, nil)
			pool := otlp.NewPool(otlp.Options{})
			c := newCoordinator(t, Options{MinExportInterval: 100 * time.Millisecond, Sinks: sinks, Exporter: pool,
				Prometheus: promexport.NewCollector()})
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { _ = c.Start(ctx); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			big := update(nil, time.Hour)
			big.Key, big.Name, big.Source = Key{Kind: "Metric", Namespace: "tenant", Name: "big"}, "tenant_big", wideSource{n: wide}
			big.DimensionNames = make([]string, 32)
			for j := range big.DimensionNames {
				big.DimensionNames[j] = fmt.Sprint("d", j)
			}
			big.Sink = SinkRef{NamespacedName: nn, Explicit: true}
			small := update(&valueSource{}, time.Hour)
			small.Key, small.Name = Key{Kind: "Metric", Namespace: "neighbour", Name: "m"}, "neighbour_m"
			small.Sink = big.Sink
			c.Publish(big, true)
			c.Publish(small, true)

			ok := sink.WaitFor(30*time.Second, func() bool {
				return len(sink.LatestPoints("neighbour_m")) == 1 && len(receivedSeries(sink, "tenant_big")) == wide
			})
			if !ok {
				t.Fatalf("received %d points of neighbour_m and %d series of tenant_big (want 1 and %d) in %d requests",
					len(sink.LatestPoints("neighbour_m")), len(receivedSeries(sink, "tenant_big")), wide, sink.Count())
			}
		})
	}
}

// receivedSeries returns the distinct attribute sets of metric across
// every request the sink received.
func receivedSeries(sink *otlpsink.Sink, metric string) map[string]bool {
	out := map[string]bool{}
	for _, b := range sink.Received() {
		for _, m := range b.MetricList() {
			if m.Name == metric {
				for _, p := range m.Points {
					out[fmt.Sprint(p.Attributes)] = true
				}
			}
		}
	}
	return out
}

// TestChunksSplitAWideMetric checks the requests a push of a wide metric
// and a small one is cut into: each within maxRequestBytes, every point
// in exactly one, and each metric an item of one request only, the last
// holding its points, so its push counts as done once, and not before
// all its points went out.
func TestChunksSplitAWideMetric(t *testing.T) {
	big := update(nil, time.Hour)
	big.Key, big.Name, big.Source = Key{Kind: "Metric", Namespace: "tenant", Name: "big"}, "tenant_big", wideSource{n: 700}
	big.DimensionNames = make([]string, 32)
	for j := range big.DimensionNames {
		big.DimensionNames[j] = fmt.Sprint("d", j)
	}
	small := update(&valueSource{}, time.Hour)
	small.Key, small.Name = Key{Kind: "Metric", Namespace: "neighbour", Name: "m"}, "neighbour_m"
	chs := chunks([]due{{key: big.Key, update: &big}, {key: small.Key, update: &small}}, time.Now())
	if len(chs) < 11 {
		t.Fatalf("%d requests for 22 MB, want at least 11", len(chs))
	}
	points, items := map[string]int{}, map[Key]int{}
	for i, ch := range chs {
		if ch.bytes > maxRequestBytes {
			t.Errorf("request %d holds about %d bytes, over %d", i, ch.bytes, maxRequestBytes)
		}
		for _, m := range ch.metrics {
			points[m.Name] += len(m.Points)
		}
		for _, d := range ch.items {
			items[d.key]++
			if d.key == big.Key && i != len(chs)-1 && !slices.ContainsFunc(chs[i].metrics, func(m otlp.Metric) bool { return m.Name == big.Name }) {
				t.Errorf("the wide metric is an item of request %d, which holds none of its points", i)
			}
		}
	}
	if points["tenant_big"] != 700 || points["neighbour_m"] != 1 {
		t.Errorf("points %v, want 700 and 1", points)
	}
	if items[big.Key] != 1 || items[small.Key] != 1 {
		t.Errorf("items %v, want each metric once", items)
	}
}
