package coordinator

import (
	"math"
	"strings"
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
// they cannot disagree on what a metric exports. Series are distinct
// within a cluster (the evaluator folds an empty projection into an
// absent one); should a Source give one cluster twice, rows with equal
// labels are summed rather than repeated, so no export under-counts.
func Rows(u *Update) []Row {
	width := len(u.Base) + 1 + len(u.DimensionNames)
	snap := u.Source.Snapshot()
	var out []Row
	for _, cs := range snap {
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
	if repeatsCluster(snap) {
		out = mergeRows(out)
	}
	return out
}

// repeatsCluster reports whether two entries of snap name one cluster.
func repeatsCluster(snap []ClusterSeries) bool {
	for i := range snap {
		for j := range i {
			if snap[i].Cluster == snap[j].Cluster {
				return true
			}
		}
	}
	return false
}

// mergeRows sums rows with equal values into the first of them.
func mergeRows(rows []Row) []Row {
	at := make(map[string]int, len(rows))
	out := rows[:0]
	for _, r := range rows {
		k := strings.Join(r.Values, "\xff")
		if i, ok := at[k]; ok {
			out[i].Value = saturatingAdd(out[i].Value, r.Value)
			continue
		}
		at[k] = len(out)
		out = append(out, r)
	}
	return out
}

// saturatingAdd adds without wrapping around.
func saturatingAdd(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
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

// versioned is a Source that counts the changes of its series.
type versioned interface{ Version() uint64 }

// family describes u to the Prometheus collector, which renders the
// samples from u.Source when st's version moved, none while st is
// withdrawn.
func family(u *Update, st *state) promexport.Family {
	f := promexport.Family{Name: u.Name, Help: u.Description, LabelNames: LabelNames(u), Version: st.version.Load}
	if v, ok := u.Source.(versioned); ok {
		// Both counters only grow, so the sum moves whenever either does
		// and never comes back; a Publish sets the family anew (with u's
		// Source), which the collector renders afresh.
		f.Version = func() uint64 { return st.version.Load() + v.Version() }
	}
	f.Samples = func() []promexport.Sample {
		if st.withdrawn.Load() {
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
