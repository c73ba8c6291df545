package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
)

const (
	teams = 10
	tiers = 3
)

func teamValue(t int) string { return fmt.Sprintf("t%d", t) }
func tierValue(t int) string { return string(rune('a' + t)) }

// model is what the benchmark knows the target objects' labels to be:
// object k has team k%10 (never changed) and a tier that the background
// writers rotate. Each writer owns a disjoint set of objects, so the
// model is exact once the writers have stopped.
type model struct {
	tier []uint8
}

func newModel(n int) *model {
	m := &model{tier: make([]uint8, n)}
	for k := range m.tier {
		m.tier[k] = uint8((k / teams) % tiers)
	}
	return m
}

func (m *model) team(k int) int   { return k % teams }
func (m *model) tierOf(k int) int { return int(m.tier[k]) }

// cells counts objects per (team, tier).
func (m *model) cells() (c [teams][tiers]int) {
	for k, t := range m.tier {
		c[k%teams][t]++
	}
	return c
}

// benchMetric is one of the M metrics: a label selector over team and
// tier, projecting one or both of them.
type benchMetric struct {
	name        string
	selector    string
	projections []string // label names: "team", "tier"
	match       func(team, tier int) bool
}

// metricFor returns metric i. The four shapes cycle: every object (an
// existence selector), one team, one tier, two teams but not one tier.
func metricFor(i int) benchMetric {
	k := i / 4
	name := fmt.Sprintf("bench_m%04d", i)
	switch i % 4 {
	case 0:
		return benchMetric{name: name, selector: "team", projections: []string{"tier"},
			match: func(int, int) bool { return true }}
	case 1:
		t := k % teams
		return benchMetric{name: name, selector: "team=" + teamValue(t), projections: []string{"tier"},
			match: func(team, _ int) bool { return team == t }}
	case 2:
		y := k % tiers
		return benchMetric{name: name, selector: "tier=" + tierValue(y), projections: []string{"team"},
			match: func(_, tier int) bool { return tier == y }}
	default:
		t1, t2, y := k%teams, (k+3)%teams, k%tiers
		return benchMetric{name: name,
			selector:    fmt.Sprintf("team in (%s,%s),tier!=%s", teamValue(t1), teamValue(t2), tierValue(y)),
			projections: []string{"team", "tier"},
			match: func(team, tier int) bool {
				return (team == t1 || team == t2) && tier != y
			}}
	}
}

// expected returns the series the metric must show: projected label
// values (joined) → count.
func (b benchMetric) expected(cells [teams][tiers]int) map[string]float64 {
	out := map[string]float64{}
	for team := range teams {
		for tier := range tiers {
			if cells[team][tier] == 0 || !b.match(team, tier) {
				continue
			}
			labels := map[string]string{"team": teamValue(team), "tier": tierValue(tier)}
			out[b.key(labels)] += float64(cells[team][tier])
		}
	}
	return out
}

func (b benchMetric) key(labels map[string]string) string {
	parts := make([]string, len(b.projections))
	for i, p := range b.projections {
		parts[i] = p + "=" + labels[p]
	}
	return strings.Join(parts, ",")
}

// spec returns the Metric object for mode.
func (b benchMetric) object(mode string, pollInterval time.Duration, ns string) *v1alpha1.Metric {
	m := &v1alpha1.Metric{
		ObjectMeta: metav1.ObjectMeta{Name: strings.ReplaceAll(b.name, "_", "-"), Namespace: ns},
		Spec: v1alpha1.MetricSpec{
			Name:          b.name,
			Description:   "benchmark metric " + b.selector,
			Target:        v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Namespace:     objectsNamespace,
			LabelSelector: b.selector,
		},
	}
	for _, p := range b.projections {
		m.Spec.Projections = append(m.Spec.Projections, v1alpha1.Projection{Name: p, FieldPath: "metadata.labels." + p})
	}
	setMode(m, mode, pollInterval)
	return m
}

func setMode(m *v1alpha1.Metric, mode string, pollInterval time.Duration) {
	if mode == modeEventDriven {
		m.Spec.EventDriven = ptr.To(true)
		// Polling cannot be what keeps it current.
		m.Spec.Interval = metav1.Duration{Duration: time.Hour}
	} else {
		m.Spec.EventDriven = ptr.To(false)
		m.Spec.Interval = metav1.Duration{Duration: pollInterval}
	}
}

// probeMetricObject selects only the probe ConfigMap and projects its seq
// label; it pushes to the benchmark's DataSink.
func probeMetricObject(mode string, pollInterval time.Duration) *v1alpha1.Metric {
	m := &v1alpha1.Metric{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-probe", Namespace: metricsNamespace},
		Spec: v1alpha1.MetricSpec{
			Name:          probeMetric,
			Description:   "the benchmark's probe ConfigMap by its seq label",
			Target:        v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Namespace:     objectsNamespace,
			LabelSelector: "probe=true",
			Projections:   []v1alpha1.Projection{{Name: "seq", FieldPath: "metadata.labels.seq"}},
			DataSinkRef:   &v1alpha1.DataSinkReference{Name: sinkName},
		},
	}
	setMode(m, mode, pollInterval)
	return m
}

// mismatch compares the scraped families with what the metrics must show
// and describes the first difference ("" when all match). probeSeq < 0
// skips the probe.
func mismatch(fams famMap, ms []benchMetric, cells [teams][tiers]int, probeSeq int64) string {
	missing, wrong := 0, 0
	first := ""
	for _, b := range ms {
		samples := scrape.Samples(fams, b.name)
		if samples == nil {
			missing++
			if first == "" {
				first = b.name + " absent"
			}
			continue
		}
		got := map[string]float64{}
		for _, s := range samples {
			got[b.key(s.Labels)] += s.Value
		}
		want := b.expected(cells)
		if !equalSeries(got, want) {
			wrong++
			if first == "" {
				first = fmt.Sprintf("%s = %s, want %s", b.name, render(got), render(want))
			}
		}
	}
	if probeSeq >= 0 {
		if seq, ok := visibleSeq(fams); !ok || seq != probeSeq {
			wrong++
			if first == "" {
				first = fmt.Sprintf("%s shows seq %d, want %d", probeMetric, seq, probeSeq)
			}
		}
	}
	if missing+wrong == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d families absent, %d wrong (first: %s)", missing, len(ms), wrong, first)
}

func equalSeries(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func render(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("{%s}=%g", k, m[k])
	}
	return strings.Join(parts, " ")
}
