package datasink

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// The matching of hosts against the rules is tested in internal/egress;
// these tests cover what DataSinks add: endpoints parsed into hosts, and
// refusals as EndpointNotAllowed conditions naming the flag.

// hosts is a fixed name → addresses table; any other name fails to resolve.
type hosts map[string][]string

func (h hosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := h[host]
	if !ok {
		return nil, errors.New("lookup " + host + " on 10.96.0.10:53: no such host")
	}
	out := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		out[i] = netip.MustParseAddr(a)
	}
	return out, nil
}

func TestEgressCheck(t *testing.T) {
	dns := hosts{
		"public.example.org":   {"203.0.113.7"},
		"mixed.example.org":    {"203.0.113.8", "10.1.2.3"},
		"internal.example.org": {"10.1.2.3"},
		"mapped.example.org":   {"::ffff:203.0.113.9"},
	}
	rules := []string{"collector.monitoring.svc", "*.live.dynatrace.com", "203.0.113.0/24", " 2001:db8::/32", "198.51.100.1"}
	e, err := ParseEgress(rules, dns)
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
		{endpoint: "https://a.b.live.dynatrace.com/x", allowed: true, dialAny: true},
		{endpoint: "https://live.dynatrace.com/x", allowed: false}, // the glob needs a label before the domain
		{endpoint: "https://evil-live.dynatrace.com/x", allowed: false},
		{endpoint: "http://203.0.113.50:4318", allowed: true, dialOK: "203.0.113.50", dialNo: "10.0.0.1"},
		{endpoint: "http://198.51.100.1:4318", allowed: true, dialOK: "198.51.100.1", dialNo: "198.51.100.2"},
		{endpoint: "grpc://[2001:db8::5]:4317", allowed: true, dialOK: "2001:db8::5", dialNo: "::1"},
		{endpoint: "http://10.0.0.1:4318", allowed: false},
		{endpoint: "http://127.0.0.1:4318", allowed: false},
		{endpoint: "grpc://[::1]:4317", allowed: false},
		{endpoint: "http://public.example.org:4318", allowed: true, dialOK: "203.0.113.7", dialNo: "10.1.2.3"},
		{endpoint: "http://mapped.example.org:4318", allowed: true, dialOK: "::ffff:203.0.113.9", dialNo: "169.254.169.254"},
		{endpoint: "http://mixed.example.org:4318", allowed: false},    // one address outside is enough
		{endpoint: "http://internal.example.org:4318", allowed: false}, // resolves into a forbidden range
		{endpoint: "http://unknown.example.org:4318", allowed: false},  // cannot be checked: refused
		{endpoint: "http://localhost:4318", allowed: false},
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
				// Resolved addresses and resolver details never reach the message.
				for _, leak := range []string{"10.1.2.3", "10.96.0.10", "203.0.113.8"} {
					if strings.Contains(err.Error(), leak) {
						t.Fatalf("message %q names %s", err, leak)
					}
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

func TestParseEgressRejectsMalformedRules(t *testing.T) {
	for _, rule := range []string{"https://collector", "collector:4318", "*", "a.*.example.com", "10.0.0.0/33", "*.", "exa mple.com"} {
		if _, err := ParseEgress([]string{rule}, nil); err == nil {
			t.Errorf("rule %q accepted", rule)
		}
	}
}

// TestEgressResolvesNames uses the system resolver: localhost is a name
// that resolves into a range a platform would forbid.
func TestEgressResolvesNames(t *testing.T) {
	outside, err := ParseEgress([]string{"10.0.0.0/8"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outside.Check(t.Context(), "http://localhost:4318"); reason.Of(err, "") != v1alpha1.ReasonEndpointNotAllowed {
		t.Fatalf("localhost with only 10.0.0.0/8 allowed: %v", err)
	}
	loopback, err := ParseEgress([]string{"127.0.0.0/8", "::1/128"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	allow, err := loopback.Check(t.Context(), "grpc://localhost:4317")
	if err != nil || allow == nil {
		t.Fatalf("localhost with loopback allowed: check %v, %v", allow != nil, err)
	}
}
