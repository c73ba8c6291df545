package events

import (
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/registry"
)

// benchShape makes metric i of n: its label selector and projections.
type benchShape func(i, n int) evaluation.Spec

var benchShapes = []struct {
	name  string
	shape benchShape
	// relabel makes the updates move objects between selectors (the
	// tier label rotates) rather than only change a projected value.
	relabel bool
}{
	// Every metric wants 90% of the objects (one team left out); ten
	// distinct specs, the rest repeat them.
	{name: "", shape: func(i, _ int) evaluation.Spec {
		return evaluation.Spec{LabelSelector: "team!=" + strconv.Itoa(i%10), Projections: []v1alpha1.Projection{
			{Name: "tier", FieldPath: "metadata.labels.tier"}, {Name: "step", FieldPath: "metadata.labels.step"}}}
	}},
	// The shapes of hack/bench (every object, one team, one tier, two
	// teams but not one tier): about 44 distinct specs at 1,000 metrics.
	{name: "mix/", relabel: true, shape: func(i, _ int) evaluation.Spec {
		k, tier := i/4, func(n int) string { return []string{"a", "b", "c"}[n%3] }
		var sel string
		var proj []string
		switch i % 4 {
		case 0:
			sel, proj = "team", []string{"tier"}
		case 1:
			sel, proj = "team="+strconv.Itoa(k%10), []string{"tier"}
		case 2:
			sel, proj = "tier="+tier(k), []string{"team"}
		default:
			sel, proj = fmt.Sprintf("team in (%d,%d),tier!=%s", k%10, (k+3)%10, tier(k)), []string{"team", "tier"}
		}
		s := evaluation.Spec{LabelSelector: sel}
		for _, p := range proj {
			s.Projections = append(s.Projections, v1alpha1.Projection{Name: p, FieldPath: "metadata.labels." + p})
		}
		return s
	}},
	// Every spec distinct, and ten metrics want any one object: the
	// objects' shard label picks them. The updates move objects between
	// tiers, which changes two series of each interested metric (and
	// seldom makes or ends one, whatever the metrics' sizes).
	{name: "interested=10/", relabel: true, shape: func(i, _ int) evaluation.Spec {
		return evaluation.Spec{LabelSelector: "shard=" + strconv.Itoa(i/10), Projections: []v1alpha1.Projection{
			{Name: "p" + strconv.Itoa(i%10), FieldPath: "metadata.labels.tier"}}}
	}},
}

// BenchmarkEvent measures one watch event, from the handler receiving the
// object to every interested metric's aggregate being updated (what
// /metrics then renders) and the coordinator told, for 10, 100 and
// 1,000 metrics over 10,000 objects, in three shapes (see benchShapes).
//
// The delay=20ms/ variants run the handler as the operator does, with
// DefaultNotifyDelay: changes are told by the flush, whose CPU counts in
// cpu-ns/op (it runs on its own goroutine). heap-B/object is the heap the
// watch keeps per object for all its metrics (aggregates and the
// handler's bookkeeping), measured after the initial list.
func BenchmarkEvent(b *testing.B) {
	for _, delay := range []time.Duration{0, DefaultNotifyDelay} {
		for _, sh := range benchShapes {
			for _, metrics := range []int{10, 100, 1000} {
				name := fmt.Sprintf("%smetrics=%d", sh.name, metrics)
				if delay > 0 {
					if metrics == 100 {
						continue
					}
					name = "delay=" + delay.String() + "/" + name
				}
				b.Run(name, func(b *testing.B) {
					benchEvent(b, sh.shape, sh.relabel, metrics, delay)
				})
			}
		}
	}
}

func benchEvent(b *testing.B, shape benchShape, relabel bool, metrics int, delay time.Duration) {
	const objects = 10000
	shards := max(metrics/10, 1)
	objs := make([]map[string]any, objects)
	for i := range objs {
		objs[i] = configMap(i, 0, 0, shards)
	}
	reg := registry.New()
	key := registry.InformerKey{Cluster: "local", GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}}
	var changes atomic.Int64
	// The real coordinator, not started: Changed does its
	// bookkeeping and queueing as in the operator.
	coord, err := coordinator.New(coordinator.Options{MinExportInterval: time.Second, Sinks: datasink.NewStore(),
		Exporter: otlp.NewPool(otlp.Options{}), Prometheus: promexport.NewCollector()})
	if err != nil {
		b.Fatal(err)
	}
	for i := range metrics {
		e, err := evaluation.Compile(shape(i, metrics))
		if err != nil {
			b.Fatal(err)
		}
		agg := evaluation.NewAggregate(e)
		mkey := coordinator.Key{Kind: "Metric", Namespace: "bench", Name: strconv.Itoa(i)}
		coord.Publish(coordinator.Update{Key: mkey, Name: "m" + strconv.Itoa(i), Interval: time.Hour,
			DimensionNames: e.DimensionNames(), Source: coordinator.AggregateSource{Cluster: "local", Aggregate: agg}}, true)
		tracker := coord.Tracker(mkey) // as the event-driven reconciler's subscriptions do
		reg.Register(key, &registry.Subscription{ID: mkey.String(), Aggregate: agg,
			OnChange: func() { changes.Add(1); tracker.Changed() }})
	}
	h := &Handler{Registry: reg, NotifyDelay: delay}
	// The heap the list leaves behind is the per-object state of every
	// metric and of the handler: the objects themselves were there before.
	var before, held runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h.Replace(key, objs)
	runtime.GC()
	runtime.ReadMemStats(&held)
	runtime.KeepAlive(objs)
	heldPerObject := float64(int64(held.HeapAlloc)-int64(before.HeapAlloc)) / objects
	// 1,024 objects changed, then each changed back, so that every event
	// of every round changes its object however long the loop runs.
	updates := make([]map[string]any, 2048)
	for i := range 1024 {
		o, step := i*7%objects, i%5+1
		if relabel {
			updates[i] = configMap(o, 0, step, shards)
		} else {
			updates[i] = configMap(o, step, 0, shards)
		}
		updates[1024+i] = configMap(o, 0, 0, shards)
	}
	runtime.GC() // so that the garbage of the setup is not collected on the clock
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; b.Loop(); i++ {
		h.Upsert(key, updates[i%len(updates)])
	}
	if delay > 0 {
		time.Sleep(2 * delay) // the last flush, on the clock
	}
	// CPU time of the process (GC included) per event: on a machine
	// shared with other work it varies far less than ns/op.
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(changes.Load())/float64(b.N), "changes/op")
	b.ReportMetric(heldPerObject, "heap-B/object")
}

// cpuTime returns the user and system CPU time the process used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// configMap is object i with its step label, its tier moved on by
// tierShift, and its shard label one of shards.
func configMap(i, step, tierShift, shards int) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{
			"name": "cm-" + strconv.Itoa(i), "namespace": "bench", "uid": "uid-" + strconv.Itoa(i),
			"labels": map[string]any{"team": strconv.Itoa(i % 10), "tier": []string{"a", "b", "c"}[(i+tierShift)%3],
				"step": strconv.Itoa(step), "shard": strconv.Itoa(i % shards)},
		},
		"data": map[string]any{"k": "v"},
	}
}
