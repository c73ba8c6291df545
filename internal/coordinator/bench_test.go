package coordinator

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/evaluation"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// BenchmarkScrape measures rendering /metrics: gathering every metric's
// family from its aggregate and encoding it as Prometheus text, for 1 and
// 100 metrics of 100 series each.
func BenchmarkScrape(b *testing.B) {
	for _, metrics := range []int{1, 100} {
		b.Run(fmt.Sprintf("metrics=%d", metrics), func(b *testing.B) {
			collector := promexport.NewCollector()
			c := newCoordinator(b, Options{Sinks: datasink.NewStore(), Exporter: &recorder{}, Prometheus: collector})
			e, err := evaluation.Compile(evaluation.Spec{Projections: []v1alpha1.Projection{
				{Name: "name", FieldPath: "metadata.name"}}})
			if err != nil {
				b.Fatal(err)
			}
			for m := range metrics {
				agg := evaluation.NewAggregate(e)
				objs := make([]map[string]any, 100)
				for i := range objs {
					objs[i] = map[string]any{"metadata": map[string]any{"name": "obj-" + strconv.Itoa(i), "uid": strconv.Itoa(i)}}
				}
				agg.Replace(objs)
				c.Publish(Update{Key: Key{Kind: "Metric", Namespace: "ns", Name: strconv.Itoa(m)}, Name: "m" + strconv.Itoa(m),
					Base:           []evaluation.Dimension{{Name: "group"}, {Name: "version", Value: "v1"}, {Name: "kind", Value: "ConfigMap"}},
					DimensionNames: e.DimensionNames(), Source: AggregateSource{Cluster: "local", Aggregate: agg}}, true)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collector)
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				fams, err := reg.Gather()
				if err != nil {
					b.Fatal(err)
				}
				enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
				for _, f := range fams {
					if err := enc.Encode(f); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(buf.Len()), "bytes/scrape")
		})
	}
}
