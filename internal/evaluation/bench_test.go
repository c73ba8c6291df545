package evaluation

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// benchObjects returns n pods spread over namespaces, phases and readiness.
func benchObjects(n int) []map[string]any {
	phases := []string{"Running", "Pending", "Succeeded", "Failed"}
	objs := make([]map[string]any, n)
	for i := range objs {
		ready := "True"
		if i%7 == 0 {
			ready = "False"
		}
		objs[i] = map[string]any{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{
				"uid": fmt.Sprintf("uid-%08d", i), "name": fmt.Sprintf("pod-%d", i),
				"namespace":         fmt.Sprintf("ns-%d", i%50),
				"creationTimestamp": "2024-01-02T03:04:05Z",
				"labels":            map[string]any{"app": fmt.Sprintf("app-%d", i%20), "tier": "web"},
			},
			"spec": map[string]any{"nodeName": fmt.Sprintf("node-%d", i%10), "priority": int64(i % 1000)},
			"status": map[string]any{
				"phase": phases[i%len(phases)],
				"conditions": []any{
					map[string]any{"type": "Initialized", "status": "True"},
					map[string]any{"type": "Ready", "status": ready},
				},
			},
		}
	}
	return objs
}

var benchSpecs = map[string]Spec{
	"count-by-phase": {
		LabelSelector: "tier=web",
		Projections: []v1alpha1.Projection{
			{Name: "namespace", FieldPath: "metadata.namespace"},
			{Name: "phase", FieldPath: "status.phase"},
		},
	},
	"ready-filter-max": {
		FieldSelector: "status.phase!=Failed",
		Projections: []v1alpha1.Projection{
			{Name: "namespace", FieldPath: "metadata.namespace"},
			{Name: "ready", FieldPath: "status.conditions[?(@.type=='Ready')].status"},
			{Name: "app", FieldPath: "metadata.labels['app']", Default: rawJSON(`"none"`)},
		},
		ValueFrom: &v1alpha1.ValueFrom{FieldPath: "spec.priority", Aggregation: v1alpha1.AggregationMax},
	},
}

// BenchmarkUpsert measures one event (an update of an object already
// held) against an aggregate of 100,000 objects.
func BenchmarkUpsert(b *testing.B) {
	const n = 100_000
	objs := benchObjects(n)
	for name, spec := range benchSpecs {
		b.Run(name, func(b *testing.B) {
			a := NewAggregate(mustCompile(b, spec))
			a.Replace(objs)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				o := objs[i%n]
				a.Upsert(o["metadata"].(map[string]any)["uid"].(string), o)
			}
		})
	}
}

// BenchmarkReplace measures a whole-list evaluation of 100,000 objects
// into an empty aggregate (a poll, or a metric joining an informer).
func BenchmarkReplace(b *testing.B) {
	objs := benchObjects(100_000)
	for name, spec := range benchSpecs {
		b.Run(name, func(b *testing.B) {
			e := mustCompile(b, spec)
			b.ReportAllocs()
			for b.Loop() {
				NewAggregate(e).Replace(objs)
			}
		})
	}
}

// BenchmarkSeries measures a snapshot, as an export takes it.
func BenchmarkSeries(b *testing.B) {
	a := NewAggregate(mustCompile(b, benchSpecs["ready-filter-max"]))
	a.Replace(benchObjects(100_000))
	b.ReportAllocs()
	for b.Loop() {
		_ = a.Series()
	}
}

// BenchmarkRetained reports the heap an aggregate keeps per object, the
// figure that decides how many objects × metrics fit in memory: kept by
// Replace (the event path's state, which must know every object) and by
// Poll (a polling metric between polls, which keeps only its series).
func BenchmarkRetained(b *testing.B) {
	const n = 100_000
	objs := benchObjects(n)
	e := mustCompile(b, benchSpecs["ready-filter-max"])
	for name, fill := range map[string]func(*Aggregate, []map[string]any) bool{
		"replace": (*Aggregate).Replace, "poll": (*Aggregate).Poll,
	} {
		b.Run(name, func(b *testing.B) {
			var retained float64
			var series int
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				a := NewAggregate(e)
				fill(a, objs)
				runtime.GC()
				runtime.ReadMemStats(&after)
				retained = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
				series = a.SeriesLen()
				runtime.KeepAlive(a)
			}
			b.ReportMetric(retained, "heap-B/object")
			b.ReportMetric(float64(series), "series")
		})
	}
}

// BenchmarkRepoll measures a poll of 100,000 objects into an aggregate
// that holds the last poll's: Replace updates the kept objects, Poll
// evaluates the list afresh.
func BenchmarkRepoll(b *testing.B) {
	objs := benchObjects(100_000)
	e := mustCompile(b, benchSpecs["ready-filter-max"])
	for name, fill := range map[string]func(*Aggregate, []map[string]any) bool{
		"replace": (*Aggregate).Replace, "poll": (*Aggregate).Poll,
	} {
		b.Run(name, func(b *testing.B) {
			a := NewAggregate(e)
			fill(a, objs)
			b.ReportAllocs()
			for b.Loop() {
				fill(a, objs)
			}
		})
	}
}
