package otlp

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

const (
	apiKey       = "s3cr3t-api-key-0123456789"
	authHeader   = "Authorization"
	authValue    = "Api-Token " + apiKey
	testSinkKey  = "ns/sink"
	metricsPath  = "/v1/metrics"
	longDeadline = 15 * time.Second
)

var protocols = []datasink.Protocol{datasink.ProtocolHTTP, datasink.ProtocolGRPC}

// target points at sink over protocol without TLS, sending the API key.
func target(sink *otlpsink.Sink, protocol datasink.Protocol, fingerprint string) *datasink.Target {
	t := &datasink.Target{
		Protocol:    protocol,
		Insecure:    true,
		Headers:     map[string]string{authHeader: authValue},
		Fingerprint: fingerprint,
	}
	switch protocol {
	case datasink.ProtocolHTTP:
		t.Endpoint, t.URLPath = sink.HTTPAddr(), metricsPath
	case datasink.ProtocolGRPC:
		t.Endpoint = sink.GRPCAddr()
	}
	return t
}

// tlsTarget is target with TLS.
func tlsTarget(sink *otlpsink.Sink, protocol datasink.Protocol, cfg *tls.Config) *datasink.Target {
	t := target(sink, protocol, "tls")
	t.Insecure, t.TLS = false, cfg
	return t
}

// newPool returns a Pool that is shut down when the test ends.
func newPool(t *testing.T, opts Options) *Pool {
	t.Helper()
	p := NewPool(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), longDeadline)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shutdown pool: %v", err)
		}
	})
	return p
}

// onePoint is a minimal payload.
func onePoint(value int64) []Metric {
	return []Metric{{Name: "probe", Points: []Point{{Value: value}}}}
}

// waitForValue waits until sink's latest "probe" point has value.
func waitForValue(t *testing.T, sink *otlpsink.Sink, value int64) {
	t.Helper()
	ok := sink.WaitFor(longDeadline, func() bool {
		p := sink.LatestPoints("probe")
		return len(p) == 1 && p[0].Value == value
	})
	if !ok {
		t.Fatalf("sink did not receive probe=%d; latest: %+v", value, sink.LatestPoints("probe"))
	}
}

// goldenMetric is otlpsink.Metric in a form that reads well as JSON.
type goldenMetric struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Type        string            `json:"type"`
	Resource    map[string]string `json:"resource"`
	Scope       string            `json:"scope"`
	Points      []goldenPoint     `json:"points"`
}

type goldenPoint struct {
	Attributes map[string]string `json:"attributes"`
	Value      int64             `json:"value"`
	ValueType  string            `json:"valueType"`
	Time       time.Time         `json:"time"`
}

func toGolden(ms []otlpsink.Metric) []goldenMetric {
	out := make([]goldenMetric, 0, len(ms))
	for _, m := range ms {
		g := goldenMetric{Name: m.Name, Description: m.Description, Type: m.Type, Resource: m.Resource, Scope: m.Scope}
		for _, p := range m.Points {
			g.Points = append(g.Points, goldenPoint{
				Attributes: p.Attributes, Value: p.Value, ValueType: p.ValueType.String(), Time: p.Time.UTC(),
			})
		}
		out = append(out, g)
	}
	return out
}

// compareGolden compares got with testdata/name structurally (both decoded
// into the same Go value), so formatting of the file does not matter.
func compareGolden(t *testing.T, name string, got []goldenMetric) {
	t.Helper()
	path := filepath.Join("testdata", name)
	gotJSON, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, append(gotJSON, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	var want []goldenMetric
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	// Round-trip got as well so both sides went through the same decoding.
	var gotDecoded []goldenMetric
	if err := json.Unmarshal(gotJSON, &gotDecoded); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotDecoded, want) {
		t.Errorf("payload differs from %s\ngot:\n%s\nwant:\n%s", path, gotJSON, raw)
	}
}
