package otlp

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"

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
//
// Every string is made valid UTF-8: OTLP's protobuf strings must be, and
// the SDK's marshalling refuses the whole request otherwise, so one
// dimension value that is not (an annotation written through the
// protobuf API, an object served by a tenant's API server) would fail
// the push of every metric sharing the DataSink. Points whose attributes
// become equal by the repair are summed, as on /metrics: a backend may
// reject two points of one series in one request.
func resourceMetrics(res *resource.Resource, metrics []Metric, now time.Time) *metricdata.ResourceMetrics {
	out := make([]metricdata.Metrics, 0, len(metrics))
	for _, m := range metrics {
		if len(m.Points) == 0 {
			continue
		}
		dps := make([]metricdata.DataPoint[int64], len(m.Points))
		repaired := false
		for i, p := range m.Points {
			t := p.Time
			if t.IsZero() {
				t = now
			}
			attrs, r := attributes(p.Attributes)
			repaired = repaired || r
			dps[i] = metricdata.DataPoint[int64]{Attributes: attrs, Time: t, Value: p.Value}
		}
		if repaired {
			dps = mergePoints(dps)
		}
		out = append(out, metricdata.Metrics{
			Name:        validUTF8(m.Name),
			Description: validUTF8(m.Description),
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

// attributes returns the set of attrs, valid UTF-8, and whether a key or
// value had to be repaired.
func attributes(attrs []Attr) (attribute.Set, bool) {
	repaired := false
	kvs := make([]attribute.KeyValue, len(attrs))
	for i, a := range attrs {
		k, v := validUTF8(a.Key), validUTF8(a.Value)
		repaired = repaired || k != a.Key || v != a.Value
		kvs[i] = attribute.String(k, v)
	}
	// NewSet sorts and de-duplicates (last value wins), as OTLP requires
	// unique keys.
	return attribute.NewSet(kvs...), repaired
}

// validUTF8 returns s with every invalid byte sequence replaced by U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// mergePoints sums points with equal attribute sets into the first of
// them, in place.
func mergePoints(dps []metricdata.DataPoint[int64]) []metricdata.DataPoint[int64] {
	first := make(map[attribute.Distinct]int, len(dps))
	out := dps[:0]
	for _, dp := range dps {
		if i, ok := first[dp.Attributes.Equivalent()]; ok {
			out[i].Value = addSaturating(out[i].Value, dp.Value)
			continue
		}
		first[dp.Attributes.Equivalent()] = len(out)
		out = append(out, dp)
	}
	return out
}

// addSaturating adds without wrapping around: a sum past the int64 range
// stays at its bound.
func addSaturating(a, b int64) int64 {
	if s := a + b; (s > a) == (b > 0) {
		return s
	}
	if b > 0 {
		return math.MaxInt64
	}
	return math.MinInt64
}
