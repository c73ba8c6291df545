package operator_test

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestMetricsEndpointFormats scrapes a running operator's /metrics the
// ways a scraper may: the text format (plain and gzip), the protocol
// buffer format, and name[] filters. Each serves the same samples of a
// user's metric whose label values need escaping, beside the process's
// own families.
func TestMetricsEndpointFormats(t *testing.T) {
	testenv.Require(t, env)
	ns := "metrics-formats"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	for i, note := range []string{`say "hi"`, `back\slash`, "two\nlines", "ünïcödé ✓", "", "plain"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Namespace: ns}}
		if note != "" || i%2 == 0 {
			cm.Annotations = map[string]string{"note": note}
		}
		mustCreate(t, cm)
	}
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "no-note", Namespace: ns}})
	mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "notes", Namespace: ns},
		Spec: v1alpha1.MetricSpec{Name: "formats_notes", Namespace: ns, EventDriven: ptr.To(true),
			Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Interval:    metav1.Duration{Duration: time.Hour},
			Projections: []v1alpha1.Projection{{Name: "note", FieldPath: "metadata.annotations.note"}}}})

	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/metrics"
	run(t, env.Config, operator.Options{MetricsAddr: addr, MetricsSecure: false, ProbeAddr: "0", Namespace: ns})

	want := []string{
		"{cluster=local,kind=ConfigMap,version=v1} 2", // the empty note and no note are one series
		"{cluster=local,kind=ConfigMap,note=back\\slash,version=v1} 1",
		"{cluster=local,kind=ConfigMap,note=plain,version=v1} 1",
		"{cluster=local,kind=ConfigMap,note=say \"hi\",version=v1} 1",
		"{cluster=local,kind=ConfigMap,note=two\nlines,version=v1} 1",
		"{cluster=local,kind=ConfigMap,note=ünïcödé ✓,version=v1} 1",
	}
	slices.Sort(want)
	waitFamily(t, url, "formats_notes", want...)

	for _, tc := range []struct {
		name, query, accept, encoding string
		families                      []string // nil: the process's and the user's
	}{
		{name: "text", accept: "text/plain;version=0.0.4"},
		{name: "text gzip", accept: "text/plain;version=0.0.4", encoding: "gzip"},
		{name: "protobuf", accept: string(expfmt.NewFormat(expfmt.TypeProtoDelim))},
		{name: "text name[]", query: "?name[]=formats_notes&name[]=go_goroutines", accept: "text/plain", families: []string{"formats_notes", "go_goroutines"}},
		{name: "text name[] of the user's family only", query: "?name[]=formats_notes", accept: "text/plain", encoding: "gzip", families: []string{"formats_notes"}},
		{name: "protobuf name[]", query: "?name[]=formats_notes", accept: string(expfmt.NewFormat(expfmt.TypeProtoDelim)), families: []string{"formats_notes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fams, err := fetchFamilies(url+tc.query, tc.accept, tc.encoding)
			if err != nil {
				t.Fatal(err)
			}
			got := scrape.Strings(scrape.Samples(fams, "formats_notes"))
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("formats_notes = %q, want %q", got, want)
			}
			if f := fams["formats_notes"]; f.GetType() != dto.MetricType_GAUGE || f.GetHelp() == "" {
				t.Errorf("formats_notes: type %s, help %q", f.GetType(), f.GetHelp())
			}
			var names []string
			for n := range fams {
				names = append(names, n)
			}
			slices.Sort(names)
			switch {
			case tc.families != nil && !slices.Equal(names, tc.families):
				t.Errorf("families %v, want %v", names, tc.families)
			case tc.families == nil && (!slices.Contains(names, "go_goroutines") || !slices.Contains(names, "go_memstats_heap_alloc_bytes")):
				t.Errorf("the process's families are missing: %v", names)
			}
		})
	}
}

// fetchFamilies GETs url asking for the accept format and, when encoding
// is set, that content encoding, and parses what comes back in the format
// the response names.
func fetchFamilies(url, accept, encoding string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if got := resp.Header.Get("Content-Encoding"); got != encoding {
		return nil, fmt.Errorf("Content-Encoding %q, want %q", got, encoding)
	}
	var body io.Reader = resp.Body
	if encoding == "gzip" {
		if body, err = gzip.NewReader(resp.Body); err != nil {
			return nil, err
		}
	}
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() == expfmt.TypeTextPlain {
		p := expfmt.NewTextParser(model.UTF8Validation)
		return p.TextToMetricFamilies(body)
	}
	if format.FormatType() != expfmt.TypeProtoDelim {
		return nil, fmt.Errorf("content type %q for Accept %q", format, accept)
	}
	dec := expfmt.NewDecoder(body, format)
	out := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		out[mf.GetName()] = &mf
	}
}
