package coordinator

import (
	"sync/atomic"
	"time"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// Row is one series of a metric as both exports see it: a value for every
// label, in LabelNames order ("" where a base dimension or projection has
// none), and the series' value.
type Row struct {
	Values []string
	Value  int64
}

// LabelNames are the labels of u's rows: the base dimensions, cluster,
// then the projections.
func LabelNames(u *Update) []string {
	names := make([]string, 0, len(u.Base)+1+len(u.DimensionNames))
	for _, b := range u.Base {
		names = append(names, b.Name)
	}
	names = append(names, "cluster")
	return append(names, u.DimensionNames...)
}

// Rows renders u's current series. It is the one place series become
// labels: /metrics, OTLP and the preview command all render from it, so
// they cannot disagree on what a metric exports.
func Rows(u *Update) []Row {
	width := len(u.Base) + 1 + len(u.DimensionNames)
	var out []Row
	for _, cs := range u.Source.Snapshot() {
		for _, s := range cs.Series {
			values := make([]string, 0, width)
			for _, b := range u.Base {
				values = append(values, b.Value)
			}
			values = append(values, cs.Cluster)
			values = appendProjected(values, u.DimensionNames, s.Dimensions)
			out = append(out, Row{Values: values, Value: s.Value})
		}
	}
	return out
}

// appendProjected appends the value of each named dimension, "" where the
// series lacks it. Dimensions come in projection order, so one pass does.
func appendProjected(values, names []string, dims []evaluation.Dimension) []string {
	j := 0
	for _, n := range names {
		if j < len(dims) && dims[j].Name == n {
			values = append(values, dims[j].Value)
			j++
		} else {
			values = append(values, "")
		}
	}
	return values
}

// family describes u to the Prometheus collector, which renders the
// samples from u.Source on every scrape, none while withdrawn is set.
func family(u *Update, withdrawn *atomic.Bool) promexport.Family {
	f := promexport.Family{Name: u.Name, Help: u.Description, LabelNames: LabelNames(u)}
	f.Samples = func() []promexport.Sample {
		if withdrawn.Load() {
			return nil
		}
		rows := Rows(u)
		out := make([]promexport.Sample, len(rows))
		for i, r := range rows {
			out[i] = promexport.Sample{LabelValues: r.Values, Value: float64(r.Value)}
		}
		return out
	}
	return f
}

// otlpMetric renders u as one OTLP gauge. A label without a value is left
// out of the attributes: for Prometheus an empty label is no label, and
// OTLP says so by its absence.
func otlpMetric(u *Update, now time.Time) otlp.Metric {
	m := otlp.Metric{Name: u.Name, Description: u.Description}
	names := LabelNames(u)
	for _, r := range Rows(u) {
		attrs := make([]otlp.Attr, 0, len(names))
		for i, v := range r.Values {
			if v != "" {
				attrs = append(attrs, otlp.Attr{Key: names[i], Value: v})
			}
		}
		m.Points = append(m.Points, otlp.Point{Attributes: attrs, Value: r.Value, Time: now})
	}
	return m
}
