package prometheus

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/SAP/metrics-operator/internal/testing/scrape"
)

// FuzzWriteText renders a family from arbitrary names, help text, label
// names and label values, all of which users write or their objects hold.
// The text must be UTF-8 throughout (Prometheus refuses a whole scrape
// over one HELP line or label value that is not), must parse, and must
// say what the client library's rendering says.
func FuzzWriteText(f *testing.F) {
	f.Add("m", "help", "a", "x", "y")
	f.Add("0a.b-c", "back\\slash\nline \"quote\"", "a-b", "line\nfeed", `quote"d\`)
	f.Add("m", "caf\xe9", "note", "caf\xe9", "caf\xff")
	f.Add("m", "\r\x00\t", "__name", "\xed\xa0\x80", "")
	f.Add("go_up", "", "le", "{}=,", " ")
	f.Fuzz(func(t *testing.T, name, help, label, v1, v2 string) {
		c := NewCollector()
		c.Set("k", Family{Name: name, Help: help, LabelNames: []string{"cluster", label}, Samples: func() []Sample {
			return []Sample{{LabelValues: []string{"local", v1}, Value: 1}, {LabelValues: []string{"local", v2}, Value: 2}}
		}})
		var ours bytes.Buffer
		if err := c.WriteText(&ours, nil); err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(ours.Bytes()) {
			t.Fatalf("rendering is not UTF-8: %q", ours.Bytes())
		}
		got, err := parseText(ours.Bytes())
		if err != nil {
			t.Fatalf("rendering %q does not parse: %v", ours.Bytes(), err)
		}
		want, err := parseText(clientLibraryText(t, c))
		if err != nil {
			t.Fatalf("the client library's rendering does not parse: %v", err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("rendering %q parses as\n%v\nthe client library's as\n%v", ours.Bytes(), got, want)
		}
	})
}

// parseText parses the text format into each family's type, help and
// samples.
func parseText(b []byte) (map[string][]string, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for name, f := range fams {
		s := scrape.Strings(scrape.Samples(fams, name))
		slices.Sort(s)
		out[name] = append([]string{f.GetType().String(), strings.ToValidUTF8(f.GetHelp(), "\uFFFD")}, s...)
	}
	return out, nil
}
