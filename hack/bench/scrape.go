package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/internal/testing/scrape"
)

type famMap = map[string]*dto.MetricFamily

// scrapeClient bounds every scrape.
var scrapeClient = &http.Client{Timeout: 30 * time.Second}

// fetch GETs a Prometheus text endpoint and parses it with expfmt. names,
// when given, ask the server (promhttp's name[] filter) for those
// families only. at is when the response headers arrived: promhttp
// gathers every family before it writes a byte, so it bounds when the
// values were read from above.
func fetch(ctx context.Context, c *http.Client, endpoint string, names ...string) (fams famMap, at time.Time, err error) {
	if len(names) > 0 {
		q := url.Values{}
		for _, n := range names {
			q.Add("name[]", n)
		}
		endpoint += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		return nil, time.Time{}, err
	}
	at = time.Now()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, at, fmt.Errorf("GET %s: %s", endpoint, resp.Status)
	}
	p := expfmt.NewTextParser(prommodel.UTF8Validation)
	fams, err = p.TextToMetricFamilies(resp.Body)
	return fams, at, err
}

// sum adds the values of every sample of family name whose labels
// include match.
func sum(fams famMap, name string, match map[string]string) (float64, bool) {
	samples := scrape.Samples(fams, name)
	total, found := 0.0, false
	for _, s := range samples {
		ok := true
		for k, v := range match {
			if s.Labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += s.Value
			found = true
		}
	}
	return total, found
}

// visibleSeq is the highest seq the probe metric shows.
func visibleSeq(fams famMap) (int64, bool) {
	best, ok := int64(-1), false
	for _, s := range scrape.Samples(fams, probeMetric) {
		if s.Value <= 0 {
			continue
		}
		if v, err := strconv.ParseInt(s.Labels["seq"], 10, 64); err == nil && v > best {
			best, ok = v, true
		}
	}
	return best, ok
}

// apiScraper reads the API server's own /metrics as an administrator.
type apiScraper struct {
	c   *http.Client
	url string
}

func newAPIScraper(cfg *rest.Config) (*apiScraper, error) {
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	c.Timeout = 60 * time.Second
	return &apiScraper{c: c, url: strings.TrimSuffix(cfg.Host, "/") + "/metrics"}, nil
}

// apiSnapshot is what the API server reported at one moment.
type apiSnapshot struct {
	// requests counts apiserver_request_total by "VERB resource[/subresource]",
	// and streamed lists (apiserver_watch_list_duration_seconds) as
	// "WATCHLIST resource".
	requests map[string]float64
	// watches is apiserver_longrunning_requests{verb="WATCH"} by resource.
	watches map[string]float64
	// registered is apiserver_registered_watchers by kind, when served.
	registered map[string]float64
	// sent and received bound the moment the counters were read: the
	// request for them was sent at sent and answered by received.
	sent, received time.Time
}

func (a *apiScraper) snapshot(ctx context.Context) (*apiSnapshot, error) {
	sent := time.Now()
	fams, _, err := fetch(ctx, a.c, a.url,
		"apiserver_request_total", "apiserver_longrunning_requests", "apiserver_registered_watchers", "apiserver_watch_list_duration_seconds")
	if err != nil {
		return nil, err
	}
	s := &apiSnapshot{requests: map[string]float64{}, watches: map[string]float64{}, registered: map[string]float64{},
		sent: sent, received: time.Now()}
	for _, smp := range scrape.Samples(fams, "apiserver_request_total") {
		key := smp.Labels["verb"] + " " + smp.Labels["resource"]
		if sub := smp.Labels["subresource"]; sub != "" {
			key += "/" + sub
		}
		s.requests[key] += smp.Value
	}
	// A list streamed as a watch's initial events is a WATCH request;
	// the API server counts those apart as they complete.
	if f := fams["apiserver_watch_list_duration_seconds"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "resource" {
					s.requests["WATCHLIST "+l.GetValue()] += float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	for _, smp := range scrape.Samples(fams, "apiserver_longrunning_requests") {
		if smp.Labels["verb"] == "WATCH" {
			s.watches[smp.Labels["resource"]] += smp.Value
		}
	}
	for _, smp := range scrape.Samples(fams, "apiserver_registered_watchers") {
		s.registered[smp.Labels["kind"]] += smp.Value
	}
	return s, nil
}

// delta returns after − before per key, leaving out zeros.
func delta(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}
