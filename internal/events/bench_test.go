package events

import (
	"fmt"
	"strconv"
	"sync/atomic"
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

// BenchmarkEvent measures one watch event, from the handler receiving the
// object to every interested metric's aggregate being updated (what
// /metrics then renders) and the coordinator told, for 1, 100 and
// 1,000 interested metrics over 10,000 objects.
func BenchmarkEvent(b *testing.B) {
	for _, metrics := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("metrics=%d", metrics), func(b *testing.B) {
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
				e, err := evaluation.Compile(evaluation.Spec{
					LabelSelector: "team!=" + strconv.Itoa(i%10),
					Projections: []v1alpha1.Projection{
						{Name: "tier", FieldPath: "metadata.labels.tier"},
						{Name: "step", FieldPath: "metadata.labels.step"},
					},
				})
				if err != nil {
					b.Fatal(err)
				}
				agg := evaluation.NewAggregate(e)
				mkey := coordinator.Key{Kind: "Metric", Namespace: "bench", Name: strconv.Itoa(i)}
				coord.Publish(coordinator.Update{Key: mkey, Name: "m" + strconv.Itoa(i), Interval: time.Hour,
					DimensionNames: e.DimensionNames(), Source: coordinator.AggregateSource{Cluster: "local", Aggregate: agg}}, true)
				reg.Register(key, &registry.Subscription{ID: mkey.String(), Aggregate: agg,
					OnChange: func() { changes.Add(1); coord.Changed(mkey) }})
			}
			h := &Handler{Registry: reg}
			const objects = 10000
			objs := make([]map[string]any, objects)
			for i := range objs {
				objs[i] = configMap(i, 0)
			}
			h.Replace(key, objs)
			updates := make([]map[string]any, 1024)
			for i := range updates {
				updates[i] = configMap(i*7%objects, i%5+1)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				h.Upsert(key, updates[i%len(updates)])
			}
			b.ReportMetric(float64(changes.Load())/float64(b.N), "changes/op")
		})
	}
}

func configMap(i, step int) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{
			"name": "cm-" + strconv.Itoa(i), "namespace": "bench", "uid": "uid-" + strconv.Itoa(i),
			"labels": map[string]any{"team": strconv.Itoa(i % 10), "tier": []string{"a", "b", "c"}[i%3], "step": strconv.Itoa(step)},
		},
		"data": map[string]any{"k": "v"},
	}
}
