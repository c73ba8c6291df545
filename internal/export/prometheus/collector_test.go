package prometheus

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
)

// processRegistry is a registry like controller-runtime's: the Go and
// process collectors, a histogram outside the reserved prefixes and a
// vector under one that has no series yet.
func processRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "app_request_seconds", Help: "h"})
	h.Observe(1)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "app_up", Help: "g"})
	reg.MustRegister(h, g,
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "metrics_operator_later_total", Help: "c"}, []string{"x"}))
	return reg
}

func constant(values ...string) func() []Sample {
	return func() []Sample {
		return []Sample{{LabelValues: slices.Clone(values), Value: 1}}
	}
}

func TestCheckName(t *testing.T) {
	reg := processRegistry(t)
	c := newCollectorFor(reg)
	c.Set("Metric/ns/mine", Family{Name: "my_metric", LabelNames: []string{"a"}, Samples: constant("x")})

	for _, tt := range []struct {
		name     string
		reserved bool
	}{
		{"go_goroutines", true},
		{"go.goroutines", true}, // sanitised to go_goroutines
		{"process_cpu_seconds_total", true},
		{"metrics_operator_events_total", true},
		{"metrics_operator_later_total", true}, // registered, never gathered
		{"workqueue_depth", true},
		{"controller_runtime_reconcile_total", true},
		{"app_up", true},                     // gathered from the registry
		{"app_request_seconds", true},        // a histogram ...
		{"app_request_seconds_count", true},  // ... and the series it owns
		{"app_request_seconds_bucket", true}, //
		{"app_request", false},
		{"my_metric", false}, // a user's family does not reserve its own name
		{"demo_configmaps", false},
		{"goroutines", false},
	} {
		err := c.CheckName(tt.name)
		if got := err != nil; got != tt.reserved {
			t.Errorf("CheckName(%q) = %v, want reserved %v", tt.name, err, tt.reserved)
			continue
		}
		if err != nil && reason.Of(err, "") != v1alpha1.ReasonReservedName {
			t.Errorf("CheckName(%q) reason = %q, want %q", tt.name, reason.Of(err, ""), v1alpha1.ReasonReservedName)
		}
	}
}

// serve serves c beside reg as the operator does, with promhttp's
// strictest setting for reg's own families (any gather error fails the
// scrape).
func serve(t *testing.T, c *Collector, reg *prometheus.Registry) *httptest.Server {
	t.Helper()
	opts := promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}
	srv := httptest.NewServer(c.Handler(promhttp.HandlerFor(reg, opts), reg, opts))
	t.Cleanup(srv.Close)
	return srv
}

// TestScrapeNeverFails checks that families a user could produce never
// fail a scrape, in the text format and in the protocol buffer format
// alike, and that both serve the same samples.
func TestScrapeNeverFails(t *testing.T) {
	reg := processRegistry(t)
	c := newCollectorFor(reg)
	_ = c.CheckName("anything") // learn the process's families

	c.Set("good", Family{Name: "good", LabelNames: []string{"a"}, Samples: constant("x")})
	c.Set("utf8", Family{Name: "bad_utf8", LabelNames: []string{"a"}, Samples: constant("ok\xffno")})
	c.Set("dup", Family{Name: "dup_series", LabelNames: []string{"a"}, Samples: func() []Sample {
		return []Sample{{LabelValues: []string{"x"}, Value: 1}, {LabelValues: []string{"y"}, Value: 5}, {LabelValues: []string{"x"}, Value: 2}}
	}})
	c.Set("repaired", Family{Name: "dup_once_repaired", LabelNames: []string{"a"}, Samples: func() []Sample {
		return []Sample{{LabelValues: []string{"a\xfe"}, Value: 1}, {LabelValues: []string{"a\xff"}, Value: 1}}
	}})
	c.Set("count", Family{Name: "wrong_count", LabelNames: []string{"a", "b"}, Samples: constant("x")})
	c.Set("reservedlabel", Family{Name: "reserved_label", LabelNames: []string{"__a"}, Samples: constant("x")})
	c.Set("duplabel", Family{Name: "dup_label", LabelNames: []string{"a-b", "a_b"}, Samples: constant("x", "y")})
	// Families that slipped past CheckName: a reserved prefix, a name the
	// registry serves, and a gauge in a histogram's series.
	c.Set("go", Family{Name: "go_goroutines", LabelNames: []string{"a"}, Samples: constant("x")})
	c.Set("app", Family{Name: "app_up", Help: "other help", LabelNames: []string{"a"}, Samples: constant("x")})
	c.Set("hist", Family{Name: "app_request_seconds_count", LabelNames: []string{"a"}, Samples: constant("x")})
	// Two keys giving one name (the coordinator gives one per name): one
	// family is served, never two.
	c.Set("twin-a", Family{Name: "twin", LabelNames: []string{"a"}, Samples: constant("first")})
	c.Set("twin-b", Family{Name: "twin", LabelNames: []string{"a"}, Samples: constant("second")})

	srv := serve(t, c, reg)
	text, err := scrape.Families(srv.URL)
	if err != nil {
		t.Fatalf("text scrape failed: %v", err)
	}
	proto, err := scrapeProto(srv.URL)
	if err != nil {
		t.Fatalf("protocol buffer scrape failed: %v", err)
	}
	for format, fams := range map[string]map[string]*dto.MetricFamily{"text": text, "protobuf": proto} {
		check := func(name string, want ...string) {
			t.Helper()
			got := scrape.Strings(scrape.Samples(fams, name))
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s: got %v, want %v", format, name, got, want)
			}
		}
		check("good", "{a=x} 1")
		check("bad_utf8", "{a=ok\uFFFDno} 1")
		check("dup_series", "{a=x} 3", "{a=y} 5")
		check("dup_once_repaired", "{a=a\uFFFD} 2")
		check("wrong_count")
		check("reserved_label")
		check("dup_label")
		check("app_up", "{} 0") // the process's own gauge, untouched
		check("app_request_seconds_count")
		check("twin", "{a=first} 1")
		if fams["go_goroutines"].GetType().String() != "GAUGE" || len(fams["go_goroutines"].GetMetric()) != 1 ||
			len(fams["go_goroutines"].GetMetric()[0].GetLabel()) != 0 {
			t.Errorf("%s: go_goroutines is not the Go collector's: %v", format, fams["go_goroutines"])
		}
	}
}

// scrapeProto fetches url in the delimited protocol buffer format.
func scrapeProto(url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if ct := expfmt.ResponseFormat(resp.Header); ct.FormatType() != expfmt.TypeProtoDelim {
		return nil, fmt.Errorf("content type %q, want the delimited protocol buffer format", ct)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
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

// TestServedListFollowsSetsAndDeletes checks that the served list, which
// Set and Delete update in place, is always what a rebuild from every
// key gives: one family per name, the smallest key's, sorted by name.
// Keys share names, change names and go, in a fixed pseudo-random order.
func TestServedListFollowsSetsAndDeletes(t *testing.T) {
	c := NewCollector()
	rebuilt := func() []string {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.publishLocked()
		return servedKeys(c)
	}
	seed := uint32(1)
	rnd := func(n int) int {
		seed = seed*1664525 + 1013904223
		return int(seed>>8) % n
	}
	for step := range 5000 {
		key := fmt.Sprintf("k%02d", rnd(40))
		if rnd(3) == 0 {
			c.Delete(key)
		} else {
			c.Set(key, Family{Name: fmt.Sprintf("family_%d", rnd(15)), Samples: constant()})
		}
		got := servedKeys(c)
		if want := rebuilt(); !slices.Equal(got, want) {
			t.Fatalf("step %d (%s): served %v, a rebuild serves %v", step, key, got, want)
		}
	}
}

// servedKeys lists the served families as name=key.
func servedKeys(c *Collector) []string {
	var out []string
	for _, e := range c.families() {
		out = append(out, e.name+"="+e.key)
	}
	return out
}
