package otlpsink

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Metric is one received metric reduced to what tests usually assert on.
type Metric struct {
	Name        string
	Description string
	Unit        string
	// Type is the OTLP data type, for example "Gauge" or "Sum".
	Type string
	// Resource holds the resource attributes, for example service.name.
	Resource map[string]string
	// Scope is the instrumentation scope name.
	Scope string
	// Points are the number data points (Gauge and Sum only), sorted by
	// their attributes so that tests can compare them directly.
	Points []Point
	// Headers are the headers of the request that carried the metric, as in
	// Batch.
	Headers map[string][]string
}

// Point is one number data point.
type Point struct {
	// Attributes are the point's attributes with values rendered as text.
	Attributes map[string]string
	// Value is the integer value; a double point is truncated, check
	// ValueType when that matters.
	Value     int64
	ValueType pmetric.NumberDataPointValueType
	Time      time.Time
}

// Latest returns the most recently received metric with the given name.
func (s *Sink) Latest(name string) (Metric, bool) {
	batches := s.Received()
	for i := len(batches) - 1; i >= 0; i-- {
		if m, ok := findMetric(batches[i], name); ok {
			return m, true
		}
	}
	return Metric{}, false
}

// LatestPoints returns the data points of the most recently received metric
// with the given name, or nil when there is none.
func (s *Sink) LatestPoints(name string) []Point {
	m, _ := s.Latest(name)
	return m.Points
}

// MetricList reduces every metric of the batch, in the order received.
func (b Batch) MetricList() []Metric {
	var out []Metric
	rms := b.Metrics.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			sm := sms.At(j)
			ms := sm.Metrics()
			for k := range ms.Len() {
				out = append(out, reduce(rm.Resource().Attributes(), sm.Scope().Name(), ms.At(k), b.Headers))
			}
		}
	}
	return out
}

func findMetric(b Batch, name string) (Metric, bool) {
	list := b.MetricList()
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Name == name {
			return list[i], true
		}
	}
	return Metric{}, false
}

func reduce(resource pcommon.Map, scope string, m pmetric.Metric, headers map[string][]string) Metric {
	out := Metric{
		Name:        m.Name(),
		Description: m.Description(),
		Unit:        m.Unit(),
		Type:        m.Type().String(),
		Resource:    attrs(resource),
		Scope:       scope,
		Headers:     headers,
	}
	var dps pmetric.NumberDataPointSlice
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		dps = m.Gauge().DataPoints()
	case pmetric.MetricTypeSum:
		dps = m.Sum().DataPoints()
	default:
		return out
	}
	for i := range dps.Len() {
		dp := dps.At(i)
		p := Point{
			Attributes: attrs(dp.Attributes()),
			ValueType:  dp.ValueType(),
			Time:       dp.Timestamp().AsTime(),
		}
		switch dp.ValueType() {
		case pmetric.NumberDataPointValueTypeInt:
			p.Value = dp.IntValue()
		case pmetric.NumberDataPointValueTypeDouble:
			p.Value = int64(dp.DoubleValue())
		}
		out.Points = append(out.Points, p)
	}
	slices.SortFunc(out.Points, func(a, b Point) int {
		return cmp.Compare(attrKey(a.Attributes), attrKey(b.Attributes))
	})
	return out
}

func attrs(m pcommon.Map) map[string]string {
	out := make(map[string]string, m.Len())
	for k, v := range m.All() {
		out[k] = v.AsString()
	}
	return out
}

// attrKey renders attributes canonically for sorting.
func attrKey(a map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(a)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(a[k])
		b.WriteByte(0)
	}
	return b.String()
}
