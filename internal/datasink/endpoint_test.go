package datasink

import (
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

func TestParseEndpoint(t *testing.T) {
	cases := []struct {
		in       string
		proto    Protocol
		hostPort string
		path     string
		tls      bool
		reason   string // "" for success
	}{
		{"https://abc123.live.dynatrace.com/api/v2/otlp/v1/metrics", ProtocolHTTP, "abc123.live.dynatrace.com:443", "/api/v2/otlp/v1/metrics", true, ""},
		{"http://collector:4318/v1/metrics", ProtocolHTTP, "collector:4318", "/v1/metrics", false, ""},
		{"http://prometheus:9090/api/v1/otlp/v1/metrics", ProtocolHTTP, "prometheus:9090", "/api/v1/otlp/v1/metrics", false, ""},
		{"http://collector", ProtocolHTTP, "collector:4318", "/v1/metrics", false, ""},
		{"grpc://collector:4317", ProtocolGRPC, "collector:4317", "", false, ""},
		{"grpcs://collector", ProtocolGRPC, "collector:443", "", true, ""},
		{"grpc://[::1]:4317", ProtocolGRPC, "[::1]:4317", "", false, ""},
		{"grpc://collector:4317/v1/metrics", "", "", "", false, v1alpha1.ReasonInvalidEndpoint},
		{"ftp://collector/v1/metrics", "", "", "", false, v1alpha1.ReasonInvalidEndpoint},
		{"collector:4317", "", "", "", false, v1alpha1.ReasonInvalidEndpoint},
		{"https://", "", "", "", false, v1alpha1.ReasonInvalidEndpoint},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			proto, hostPort, path, useTLS, err := ParseEndpoint(tc.in)
			if tc.reason != "" {
				if err == nil || reason.Of(err, "") != tc.reason {
					t.Fatalf("err = %v, want reason %s", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if proto != tc.proto || hostPort != tc.hostPort || path != tc.path || useTLS != tc.tls {
				t.Fatalf("got (%s, %s, %s, %v), want (%s, %s, %s, %v)", proto, hostPort, path, useTLS,
					tc.proto, tc.hostPort, tc.path, tc.tls)
			}
		})
	}
}
