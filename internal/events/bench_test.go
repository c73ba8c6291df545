package events

import (
	"fmt"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/registry"
)

// BenchmarkEvent measures one watch event, from the handler receiving the
// object to every interested metric's aggregate being updated (what
// /metrics then renders), for 1 and 100 interested metrics over 10,000
// objects.
func BenchmarkEvent(b *testing.B) {
	for _, metrics := range []int{1, 100} {
		b.Run(fmt.Sprintf("metrics=%d", metrics), func(b *testing.B) {
			reg := registry.New()
			key := registry.InformerKey{Cluster: "local", GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}}
			changes := 0
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
				reg.Register(key, &registry.Subscription{ID: strconv.Itoa(i), Aggregate: evaluation.NewAggregate(e),
					OnChange: func() { changes++ }})
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
			b.ReportMetric(float64(changes)/float64(b.N), "changes/op")
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
