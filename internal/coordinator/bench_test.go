package coordinator

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/evaluation"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// BenchmarkScrape measures a /metrics scrape in the text format of 1,000
// metrics of 10 series each, served as the operator serves them (the
// collector's Handler in front of a promhttp handler of an empty process
// registry): with no change since the last scrape (the stored renderings
// are copied), and with every metric changed since (each is rendered
// again from its aggregate).
func BenchmarkScrape(b *testing.B) {
	collector := promexport.NewCollector()
	c := newCoordinator(b, Options{Sinks: datasink.NewStore(), Exporter: &recorder{}, Prometheus: collector})
	e, err := evaluation.Compile(evaluation.Spec{Projections: []v1alpha1.Projection{{Name: "name", FieldPath: "metadata.name"}}})
	if err != nil {
		b.Fatal(err)
	}
	var keys []Key
	for m := range 1000 {
		agg := evaluation.NewAggregate(e)
		objs := make([]map[string]any, 10)
		for i := range objs {
			objs[i] = map[string]any{"metadata": map[string]any{"name": "obj-" + strconv.Itoa(i), "uid": strconv.Itoa(i)}}
		}
		agg.Replace(objs)
		k := Key{Kind: "Metric", Namespace: "ns", Name: strconv.Itoa(m)}
		keys = append(keys, k)
		c.Publish(Update{Key: k, Name: "m" + strconv.Itoa(m),
			Base:           []evaluation.Dimension{{Name: "group"}, {Name: "version", Value: "v1"}, {Name: "kind", Value: "ConfigMap"}},
			DimensionNames: e.DimensionNames(), Source: AggregateSource{Cluster: "local", Aggregate: agg}}, true)
	}
	process := prometheus.NewRegistry()
	opts := promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}
	h := collector.Handler(promhttp.HandlerFor(process, opts), process, opts)
	for _, changed := range []bool{false, true} {
		b.Run("metrics=1000/series=10/changed="+strconv.FormatBool(changed), func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if changed {
					for _, k := range keys {
						c.Changed(k)
					}
				}
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				req.Header.Set("Accept", "text/plain; version=0.0.4")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("scrape: %d", rec.Code)
				}
				n = rec.Body.Len()
			}
			b.ReportMetric(float64(n), "bytes/scrape")
		})
	}
}
