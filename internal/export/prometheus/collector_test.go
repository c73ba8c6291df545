package prometheus

import (
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	c.Set(Claim{Key: "Metric/ns/mine"}, Family{Name: "my_metric", LabelNames: []string{"a"}, Samples: constant("x")})

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

// TestScrapeNeverFails serves the collector beside the process's
// families with promhttp's strictest setting (any gather error fails the
// scrape) and checks that families a user could produce never fail it.
func TestScrapeNeverFails(t *testing.T) {
	reg := processRegistry(t)
	c := newCollectorFor(reg)
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	_ = c.CheckName("anything") // learn the process's families
	set := func(key string, f Family) { c.Set(Claim{Key: key, Created: time.Unix(int64(len(key)), 0)}, f) }

	set("good", Family{Name: "good", LabelNames: []string{"a"}, Samples: constant("x")})
	set("utf8", Family{Name: "bad_utf8", LabelNames: []string{"a"}, Samples: constant("ok\xffno")})
	set("dup", Family{Name: "dup_series", LabelNames: []string{"a"}, Samples: func() []Sample {
		return []Sample{{LabelValues: []string{"x"}, Value: 1}, {LabelValues: []string{"x"}, Value: 2}}
	}})
	set("count", Family{Name: "wrong_count", LabelNames: []string{"a", "b"}, Samples: constant("x")})
	set("reservedlabel", Family{Name: "reserved_label", LabelNames: []string{"__a"}, Samples: constant("x")})
	set("duplabel", Family{Name: "dup_label", LabelNames: []string{"a-b", "a_b"}, Samples: constant("x", "y")})
	// Families that slipped past CheckName: a reserved prefix, a name the
	// registry serves, and a gauge in a histogram's series.
	set("go", Family{Name: "go_goroutines", LabelNames: []string{"a"}, Samples: constant("x")})
	set("app", Family{Name: "app_up", Help: "other help", LabelNames: []string{"a"}, Samples: constant("x")})
	set("hist", Family{Name: "app_request_seconds_count", LabelNames: []string{"a"}, Samples: constant("x")})

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	fams, err := scrape.Families(srv.URL)
	if err != nil {
		t.Fatalf("scrape failed: %v", err)
	}
	check := func(name string, want ...string) {
		t.Helper()
		if got := scrape.Strings(scrape.Samples(fams, name)); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	check("good", "{a=x} 1")
	check("bad_utf8", "{a=ok\uFFFDno} 1")
	check("dup_series", "{a=x} 1")
	check("wrong_count")
	check("reserved_label")
	check("dup_label")
	check("app_up", "{} 0") // the process's own gauge, untouched
	check("app_request_seconds_count")
	if fams["go_goroutines"].GetType().String() != "GAUGE" || len(fams["go_goroutines"].GetMetric()) != 1 ||
		len(fams["go_goroutines"].GetMetric()[0].GetLabel()) != 0 {
		t.Errorf("go_goroutines is not the Go collector's: %v", fams["go_goroutines"])
	}
}
