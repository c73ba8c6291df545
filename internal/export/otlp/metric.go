package otlp

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// ScopeName is the instrumentation scope of every exported metric.
const ScopeName = "github.com/SAP/metrics-operator"

// ServiceName is the service.name resource attribute of every export.
const ServiceName = "metrics-operator"

// Metric is a snapshot of one user-declared metric: exported as one OTLP
// Gauge named Name with one data point per series.
type Metric struct {
	// Name is the metric name as written by the user.
	Name string
	// Description becomes the Gauge's description.
	Description string
	// Points holds one entry per series. A metric without points is left
	// out of the export: an empty Gauge tells a backend nothing.
	Points []Point
}

// Point is the current value of one series.
type Point struct {
	// Attributes are the series' dimensions. Later duplicates of a key win.
	Attributes []Attr
	// Value is the gauge value.
	Value int64
	// Time is when the value was observed; zero means the time of export.
	Time time.Time
}

// Attr is one dimension of a series.
type Attr struct {
	Key   string
	Value string
}

func defaultResource() *resource.Resource {
	return resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(ServiceName))
}

// InstanceResource describes one operator replica: service.name and
// service.instance.id, so a backend can tell which replica pushed.
func InstanceResource(instanceID string) *resource.Resource {
	return resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(ServiceName),
		semconv.ServiceInstanceID(instanceID))
}

// resourceMetrics builds the payload of one export, leaving out metrics
// without points. It returns nil when nothing is left.
func resourceMetrics(res *resource.Resource, metrics []Metric, now time.Time) *metricdata.ResourceMetrics {
	out := make([]metricdata.Metrics, 0, len(metrics))
	for _, m := range metrics {
		if len(m.Points) == 0 {
			continue
		}
		dps := make([]metricdata.DataPoint[int64], len(m.Points))
		for i, p := range m.Points {
			t := p.Time
			if t.IsZero() {
				t = now
			}
			dps[i] = metricdata.DataPoint[int64]{
				Attributes: attributes(p.Attributes),
				Time:       t,
				Value:      p.Value,
			}
		}
		out = append(out, metricdata.Metrics{
			Name:        m.Name,
			Description: m.Description,
			Data:        metricdata.Gauge[int64]{DataPoints: dps},
		})
	}
	if len(out) == 0 {
		return nil
	}
	return &metricdata.ResourceMetrics{
		Resource: res,
		ScopeMetrics: []metricdata.ScopeMetrics{{
			Scope:   instrumentation.Scope{Name: ScopeName},
			Metrics: out,
		}},
	}
}

func attributes(attrs []Attr) attribute.Set {
	kvs := make([]attribute.KeyValue, len(attrs))
	for i, a := range attrs {
		kvs[i] = attribute.String(a.Key, a.Value)
	}
	// NewSet sorts and de-duplicates (last value wins), as OTLP requires
	// unique keys.
	return attribute.NewSet(kvs...)
}
