package otlp

import (
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
)

// TestInvalidUTF8NeverFailsTheRequest pushes, in one request, a metric
// whose dimension values are not UTF-8 (as an annotation written through
// the protobuf API arrives) beside a metric of someone else: both must
// arrive, the bad bytes replaced by U+FFFD, and the two series that the
// repair makes equal summed into one point.
func TestInvalidUTF8NeverFailsTheRequest(t *testing.T) {
	metrics := []Metric{
		{Name: "neighbour", Points: []Point{{Attributes: []Attr{{"team", "blue"}}, Value: 1}}},
		{Name: "hostile", Description: "notes \xff", Points: []Point{
			{Attributes: []Attr{{"note", "caf\xe9"}}, Value: 2},
			{Attributes: []Attr{{"note", "caf\xff"}}, Value: 3},
			{Attributes: []Attr{{"note", "fine"}}, Value: 4},
		}},
	}
	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			sink := otlpsink.Start(t)
			pool := newPool(t, Options{})
			if err := pool.Export(t.Context(), testSinkKey, target(sink, protocol, "a"), metrics); err != nil {
				t.Fatalf("export: %v", err)
			}
			if got := pointStrings(sink.LatestPoints("neighbour")); got != "team=blue:1" {
				t.Errorf("neighbour points = %s, want team=blue:1", got)
			}
			m, ok := sink.Latest("hostile")
			if !ok {
				t.Fatal("the metric with invalid UTF-8 did not arrive")
			}
			if want := "note=caf\uFFFD:5 note=fine:4"; pointStrings(m.Points) != want {
				t.Errorf("hostile points = %q, want %q", pointStrings(m.Points), want)
			}
			if m.Description != "notes \uFFFD" {
				t.Errorf("description = %q, want it repaired", m.Description)
			}
		})
	}
}

// pointStrings renders points (sorted by the sink) as key=value:n.
func pointStrings(points []otlpsink.Point) string {
	var out []string
	for _, p := range points {
		var attrs []string
		for k, v := range p.Attributes {
			attrs = append(attrs, k+"="+v)
		}
		out = append(out, strings.Join(attrs, ",")+fmt.Sprintf(":%d", p.Value))
	}
	return strings.Join(out, " ")
}

// FuzzResourceMetrics builds payloads from arbitrary strings: every
// string in them must be valid UTF-8 (else protobuf refuses the request),
// no two points of a metric may share an attribute set, and no value may
// be lost or wrap around.
func FuzzResourceMetrics(f *testing.F) {
	f.Add("m", "help", "k", "v", "w", int64(1), int64(2))
	f.Add("m\xff", "\xfe\n", "k\x80", "caf\xe9", "caf\xff", int64(math.MaxInt64), int64(1))
	f.Add("", "", "", "\xed\xa0\x80", "\uFFFD", int64(math.MinInt64), int64(-1))
	f.Fuzz(func(t *testing.T, name, help, key, v1, v2 string, n1, n2 int64) {
		if v1 == v2 {
			return // callers give each series once
		}
		rm := resourceMetrics(defaultResource(), []Metric{{Name: name, Description: help, Points: []Point{
			{Attributes: []Attr{{key, v1}}, Value: n1},
			{Attributes: []Attr{{key, v2}}, Value: n2},
		}}}, time.Unix(0, 0))
		m := rm.ScopeMetrics[0].Metrics[0]
		if !utf8.ValidString(m.Name) || !utf8.ValidString(m.Description) {
			t.Fatalf("name %q or description %q is not UTF-8", m.Name, m.Description)
		}
		got := map[attribute.Distinct]int64{}
		for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
			for _, kv := range dp.Attributes.ToSlice() {
				if !utf8.ValidString(string(kv.Key)) || !utf8.ValidString(kv.Value.AsString()) {
					t.Fatalf("attribute %q=%q is not UTF-8", kv.Key, kv.Value.AsString())
				}
			}
			if _, dup := got[dp.Attributes.Equivalent()]; dup {
				t.Fatalf("two points with attributes %v", dp.Attributes.ToSlice())
			}
			got[dp.Attributes.Equivalent()] = dp.Value
		}
		if strings.ToValidUTF8(v1, "\uFFFD") != strings.ToValidUTF8(v2, "\uFFFD") {
			if len(got) != 2 {
				t.Fatalf("%d points, want 2", len(got))
			}
			return
		}
		want := new(big.Int).Add(big.NewInt(n1), big.NewInt(n2))
		if want.Cmp(big.NewInt(math.MaxInt64)) > 0 {
			want.SetInt64(math.MaxInt64)
		} else if want.Cmp(big.NewInt(math.MinInt64)) < 0 {
			want.SetInt64(math.MinInt64)
		}
		for _, v := range got {
			if len(got) != 1 || v != want.Int64() {
				t.Fatalf("points %v, want one of value %v", got, want)
			}
		}
	})
}
