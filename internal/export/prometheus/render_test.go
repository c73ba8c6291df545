package prometheus

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/SAP/metrics-operator/internal/testing/scrape"
)

// fixture fills c with families a user can produce: empty projections,
// no samples at all, unicode, quotes, backslashes and line feeds in label
// values and help texts, names and labels that need sanitising, labels
// out of name order, large and negative values, and many clusters.
func fixture(c *Collector) {
	base := []string{"group", "version", "kind", "cluster"}
	c.Set("Metric/ns/empty", Family{Name: "no_series", LabelNames: base, Samples: func() []Sample { return nil }})
	c.Set("Metric/ns/plain", Family{Name: "plain", LabelNames: append(slices.Clone(base), "team"), Samples: func() []Sample {
		return []Sample{
			{LabelValues: []string{"", "v1", "ConfigMap", "local", ""}, Value: 3},
			{LabelValues: []string{"", "v1", "ConfigMap", "local", "web"}, Value: 1},
		}
	}})
	c.Set("Metric/ns/escapes", Family{Name: "escapes", Help: "help with \\ a backslash,\na line feed and \"quotes\"",
		LabelNames: append(slices.Clone(base), "value"), Samples: func() []Sample {
			var out []Sample
			for i, v := range []string{`quote"d`, `back\slash`, "line\nfeed", `\"`, `\\n`, "ünïcödé ✓ 日本", "tab\there", "", " ", "{}=,"} {
				out = append(out, Sample{LabelValues: []string{"g", "v1", "K", "local", v}, Value: float64(i)})
			}
			return out
		}})
	c.Set("Metric/ns/values", Family{Name: "values", LabelNames: []string{"n"}, Samples: func() []Sample {
		var out []Sample
		for i, v := range []float64{0, 1, -1, 2, -2, 1e15, 1 << 53, 9.223372036854776e18, -9.223372036854776e18, 123456789} {
			out = append(out, Sample{LabelValues: []string{fmt.Sprint(i)}, Value: v})
		}
		return out
	}})
	c.Set("Metric/ns/sanitised", Family{Name: "0team.count-total", LabelNames: []string{"zeta", "alpha", "my-label", "9lives", "Mid"},
		Samples: func() []Sample { return []Sample{{LabelValues: []string{"z", "a", "m", "9", "M"}, Value: 7}} }})
	c.Set("Metric/ns/clusters", Family{Name: "federated", LabelNames: append(slices.Clone(base), "tier"), Samples: func() []Sample {
		var out []Sample
		for i := range 200 {
			out = append(out, Sample{LabelValues: []string{"apps", "v1", "Deployment", fmt.Sprintf("cluster-%03d", i), []string{"", "frontend", "backend"}[i%3]}, Value: float64(i)})
		}
		return out
	}})
}

// clientLibraryText renders c's families as the client library does (the
// rendering /metrics had before families were stored as text): gathered
// as protocol buffers, encoded by expfmt.
func clientLibraryText(t *testing.T, c *Collector) []byte {
	t.Helper()
	fams, err := c.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestStoredTextMatchesClientLibrary checks the stored renderings against
// the client library's over the fixture: the same lines byte for byte
// (families and series may come in another order), so the same samples
// once parsed.
func TestStoredTextMatchesClientLibrary(t *testing.T) {
	c := NewCollector()
	fixture(c)
	var ours bytes.Buffer
	if err := c.WriteText(&ours, nil); err != nil {
		t.Fatal(err)
	}
	theirs := clientLibraryText(t, c)

	lines := func(b []byte) []string {
		l := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		slices.Sort(l)
		return l
	}
	if got, want := lines(ours.Bytes()), lines(theirs); !slices.Equal(got, want) {
		t.Errorf("stored text differs from the client library's:\n%s\nwant:\n%s", ours.Bytes(), theirs)
	}

	parse := func(b []byte) map[string][]string {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("parsing %q: %v", b, err)
		}
		out := map[string][]string{}
		for name, f := range fams {
			s := scrape.Strings(scrape.Samples(fams, name))
			slices.Sort(s)
			out[name] = append([]string{f.GetType().String(), f.GetHelp()}, s...)
		}
		return out
	}
	got, want := parse(ours.Bytes()), parse(theirs)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parsed samples differ:\n%v\nwant:\n%v", got, want)
	}
	for _, name := range []string{"plain", "escapes", "values", "_0team_count_total", "federated"} {
		if len(got[name]) < 3 {
			t.Errorf("family %s is missing or empty: %v", name, got[name])
		}
	}
	if _, ok := got["no_series"]; ok {
		t.Error("a family without series is rendered")
	}
}

// counting is a family whose samples tests change and count.
type counting struct {
	version atomic.Uint64
	calls   atomic.Int64
	value   atomic.Int64
	block   chan struct{} // when set, Samples waits for it
}

func (f *counting) family(name string) Family {
	return Family{Name: name, LabelNames: []string{"a"}, Version: f.version.Load, Samples: func() []Sample {
		f.calls.Add(1)
		if f.block != nil {
			<-f.block
		}
		return []Sample{{LabelValues: []string{"x"}, Value: float64(f.value.Load())}}
	}}
}

func text(t *testing.T, c *Collector) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.WriteText(&b, nil); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRenderedOncePerChange checks that a family is rendered on the first
// scrape after its version moved and not again until it moves, however
// many changes came in between and however many scrapes run at once.
func TestRenderedOncePerChange(t *testing.T) {
	c := NewCollector()
	f := &counting{}
	f.value.Store(1)
	c.Set("k", f.family("changing"))
	for range 3 {
		if got := text(t, c); !strings.Contains(got, `changing{a="x"} 1`) {
			t.Fatalf("scrape: %q", got)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("three scrapes of an unchanged family rendered it %d times, want 1", n)
	}

	for v := range int64(100) { // a burst of changes between two scrapes
		f.value.Store(v + 2)
		f.version.Add(1)
	}
	if got := text(t, c); !strings.Contains(got, `changing{a="x"} 101`) {
		t.Fatalf("scrape after changes: %q", got)
	}
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("a burst of 100 changes cost %d renderings, want 1", n-1)
	}

	// Concurrent scrapes of a changed family render it once.
	f.block = make(chan struct{})
	f.value.Store(7)
	f.version.Add(1)
	var wg sync.WaitGroup
	results := make([]string, 4)
	for i := range results {
		wg.Go(func() { results[i] = text(t, c) })
	}
	for f.calls.Load() < 3 {
		runtime.Gosched()
	}
	close(f.block)
	wg.Wait()
	for _, r := range results {
		if !strings.Contains(r, `changing{a="x"} 7`) {
			t.Fatalf("concurrent scrape: %q", r)
		}
	}
	if n := f.calls.Load(); n != 3 {
		t.Fatalf("four concurrent scrapes of a changed family rendered it %d times, want 1", n-2)
	}
}

// TestHandlerNegotiates checks what a scraper can ask for: name[] keeps
// the named families only (the process's and the users'), gzip is
// honoured, and the content type is the one promhttp negotiates.
func TestHandlerNegotiates(t *testing.T) {
	reg := prometheus.NewRegistry()
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "app_up", Help: "g"})
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "app_other", Help: "g"})
	reg.MustRegister(up, other)
	c := newCollectorFor(reg)
	fixture(c)
	srv := serve(t, c, reg)

	get := func(query string, header map[string]string) (http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		// A transport of its own, which does not decompress for us.
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header, string(b)
	}
	families := func(body string) []string {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("parsing: %v\n%s", err, body)
		}
		var names []string
		for n := range fams {
			names = append(names, n)
		}
		slices.Sort(names)
		return names
	}

	hdr, body := get("?name[]=app_up&name[]=plain&name[]=federated", map[string]string{"Accept": "text/plain"})
	if got := families(body); !slices.Equal(got, []string{"app_up", "federated", "plain"}) {
		t.Errorf("name[] filter: families %v", got)
	}
	if ct := expfmt.ResponseFormat(hdr); ct.FormatType() != expfmt.TypeTextPlain {
		t.Errorf("content type %q, want text", ct)
	}
	if hdr.Get("Content-Encoding") != "" {
		t.Errorf("compressed without being asked: %q", hdr.Get("Content-Encoding"))
	}

	// Users' families only: the process's registry is not gathered, the
	// headers are the same.
	hdr, body = get("?name[]=plain&name[]=escapes", map[string]string{"Accept": "text/plain", "Accept-Encoding": "gzip"})
	if got := families(body); !slices.Equal(got, []string{"escapes", "plain"}) {
		t.Errorf("name[] of users' families: families %v", got)
	}
	if ct := expfmt.ResponseFormat(hdr); ct.FormatType() != expfmt.TypeTextPlain || hdr.Get("Content-Encoding") != "gzip" ||
		!slices.Equal(hdr.Values("Vary"), []string{"Accept", "Accept-Encoding"}) {
		t.Errorf("name[] of users' families: headers %v", hdr)
	}

	hdr, body = get("", map[string]string{"Accept-Encoding": "gzip"})
	if hdr.Get("Content-Encoding") != "gzip" {
		t.Errorf("Accept-Encoding gzip: Content-Encoding %q", hdr.Get("Content-Encoding"))
	}
	if got := families(body); !slices.Contains(got, "app_up") || !slices.Contains(got, "escapes") {
		t.Errorf("gzip scrape: families %v", got)
	}
	if _, body = get("", map[string]string{"Accept-Encoding": "gzip;q=0, *"}); !strings.Contains(body, "# TYPE plain gauge") {
		t.Errorf("gzip refused: body not plain text")
	}

	proto, err := scrapeProto(srv.URL + "?name[]=plain&name[]=app_other")
	if err != nil {
		t.Fatal(err)
	}
	if len(proto) != 2 || proto["plain"] == nil || proto["app_other"] == nil {
		t.Errorf("protocol buffer scrape with name[]: %v", proto)
	}
}
