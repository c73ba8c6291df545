package datasink

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// The matching of hosts against the rules is tested in internal/egress;
// these tests cover what DataSinks add: endpoints parsed into hosts, and
// refusals as EndpointNotAllowed conditions naming the flag.

// TestEgressCheck covers what DataSinks add to egress.List: the host is
// taken from the endpoint (scheme, port, IPv6 brackets, case and a
// trailing dot), and a refusal is an EndpointNotAllowed condition that
// names the flag (that it names no address is egress.List's test).
func TestEgressCheck(t *testing.T) {
	rules := []string{"collector.monitoring.svc", "*.live.dynatrace.com", "203.0.113.0/24", "2001:db8::/32"}
	e, err := ParseEgress(rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		endpoint string
		allowed  bool
		dialAny  bool   // admitted by name: no per-connection address check
		dialOK   string // an address the per-connection check must admit
		dialNo   string // and one it must refuse
	}{
		{endpoint: "http://collector.monitoring.svc:4318/v1/metrics", allowed: true, dialAny: true},
		{endpoint: "grpc://COLLECTOR.monitoring.svc.:4317", allowed: true, dialAny: true},
		{endpoint: "https://abc123.live.dynatrace.com/api/v2/otlp/v1/metrics", allowed: true, dialAny: true},
		{endpoint: "http://203.0.113.50:4318", allowed: true, dialOK: "203.0.113.50", dialNo: "10.0.0.1"},
		{endpoint: "grpc://[2001:db8::5]:4317", allowed: true, dialOK: "2001:db8::5", dialNo: "::1"},
		{endpoint: "http://10.0.0.1:4318", allowed: false},
		{endpoint: "grpc://[::1]:4317", allowed: false},
	}
	for _, tc := range cases {
		t.Run(tc.endpoint, func(t *testing.T) {
			allow, err := e.Check(t.Context(), tc.endpoint)
			if !tc.allowed {
				if reason.Of(err, "") != v1alpha1.ReasonEndpointNotAllowed {
					t.Fatalf("err = %v, want reason %s", err, v1alpha1.ReasonEndpointNotAllowed)
				}
				if !strings.Contains(err.Error(), "--datasink-allowed-endpoints") {
					t.Errorf("message %q does not name the flag", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.dialAny != (allow == nil) {
				t.Fatalf("per-connection check present = %v, want %v", allow != nil, !tc.dialAny)
			}
			if allow != nil {
				if !allow(netip.MustParseAddr(tc.dialOK)) {
					t.Errorf("connection to %s refused", tc.dialOK)
				}
				if allow(netip.MustParseAddr(tc.dialNo)) {
					t.Errorf("connection to %s admitted", tc.dialNo)
				}
			}
		})
	}
}

func TestEgressDefaultAdmitsAny(t *testing.T) {
	for _, rules := range [][]string{nil, {}, {"", " "}} {
		e, err := ParseEgress(rules, nil)
		if err != nil || e != nil {
			t.Fatalf("ParseEgress(%q) = %v, %v; want no restriction", rules, e, err)
		}
		if allow, err := e.Check(t.Context(), "http://10.0.0.1:4318"); allow != nil || err != nil {
			t.Fatalf("nil Egress: check %v, %v", allow != nil, err)
		}
	}
}
