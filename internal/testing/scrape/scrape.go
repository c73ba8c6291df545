package scrape

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one parsed sample; labels with empty values are left out, as
// Prometheus treats them as absent.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// String renders the sample as name{labels} value, labels sorted.
func (s Sample) String() string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + s.Labels[k]
	}
	return "{" + strings.Join(parts, ",") + "} " + strconv.FormatFloat(s.Value, 'f', -1, 64)
}

// Families fetches url and parses the text exposition format.
func Families(url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Ask for the text format: it is what the parser reads.
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// Samples returns the samples of family name (nil when it is absent).
func Samples(fams map[string]*dto.MetricFamily, name string) []Sample {
	f, ok := fams[name]
	if !ok {
		return nil
	}
	out := make([]Sample, 0, len(f.GetMetric()))
	for _, m := range f.GetMetric() {
		s := Sample{Labels: map[string]string{}}
		for _, l := range m.GetLabel() {
			if l.GetValue() != "" {
				s.Labels[l.GetName()] = l.GetValue()
			}
		}
		switch {
		case m.Gauge != nil:
			s.Value = m.GetGauge().GetValue()
		case m.Counter != nil:
			s.Value = m.GetCounter().GetValue()
		case m.Untyped != nil:
			s.Value = m.GetUntyped().GetValue()
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Strings renders samples for comparison in tests.
func Strings(samples []Sample) []string {
	out := make([]string, len(samples))
	for i, s := range samples {
		out[i] = s.String()
	}
	return out
}
