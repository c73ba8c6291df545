package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

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

func TestCheck(t *testing.T) {
	dns := hosts{
		"public.example.org":   {"203.0.113.7"},
		"mixed.example.org":    {"203.0.113.8", "10.1.2.3"},
		"internal.example.org": {"10.1.2.3"},
		"mapped.example.org":   {"::ffff:203.0.113.9"},
	}
	rules := []string{"collector.monitoring.svc", "*.live.dynatrace.com", "203.0.113.0/24", " 2001:db8::/32", "198.51.100.1"}
	l, err := Parse(rules, dns)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		host    string
		allowed bool
		dialAny bool   // admitted by name: no per-connection address check
		dialOK  string // an address the per-connection check must admit
		dialNo  string // and one it must refuse
	}{
		{host: "collector.monitoring.svc", allowed: true, dialAny: true},
		{host: "COLLECTOR.monitoring.svc.", allowed: true, dialAny: true},
		{host: "abc123.live.dynatrace.com", allowed: true, dialAny: true},
		{host: "a.b.live.dynatrace.com", allowed: true, dialAny: true},
		{host: "live.dynatrace.com", allowed: false}, // the glob needs a label before the domain
		{host: "evil-live.dynatrace.com", allowed: false},
		{host: "203.0.113.50", allowed: true, dialOK: "203.0.113.50", dialNo: "10.0.0.1"},
		{host: "198.51.100.1", allowed: true, dialOK: "198.51.100.1", dialNo: "198.51.100.2"},
		{host: "2001:db8::5", allowed: true, dialOK: "2001:db8::5", dialNo: "::1"},
		{host: "10.0.0.1", allowed: false},
		{host: "127.0.0.1", allowed: false},
		{host: "::1", allowed: false},
		{host: "public.example.org", allowed: true, dialOK: "203.0.113.7", dialNo: "10.1.2.3"},
		{host: "mapped.example.org", allowed: true, dialOK: "::ffff:203.0.113.9", dialNo: "169.254.169.254"},
		{host: "mixed.example.org", allowed: false},    // one address outside is enough
		{host: "internal.example.org", allowed: false}, // resolves into a forbidden range
		{host: "unknown.example.org", allowed: false},  // cannot be checked: refused
		{host: "localhost", allowed: false},
	}
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			allow, err := l.Check(t.Context(), tc.host)
			if !tc.allowed {
				var refused *Refused
				if !errors.As(err, &refused) {
					t.Fatalf("err = %v, want *Refused", err)
				}
				// Resolved addresses and resolver details never reach the message.
				for _, leak := range []string{"10.1.2.3", "10.96.0.10", "203.0.113.8", "no such host"} {
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
	// Unresolvable and resolving outside read the same: a refusal does not
	// tell which internal names exist.
	_, unknown := l.Check(t.Context(), "x.example.org")
	_, internal := l.Check(t.Context(), "internal.example.org")
	if strings.ReplaceAll(unknown.Error(), "x.example.org", "") != strings.ReplaceAll(internal.Error(), "internal.example.org", "") {
		t.Errorf("unresolvable %q and resolving outside %q differ", unknown, internal)
	}
}

func TestDefaultAdmitsAny(t *testing.T) {
	for _, rules := range [][]string{nil, {}, {"", " "}} {
		l, err := Parse(rules, nil)
		if err != nil || l != nil {
			t.Fatalf("Parse(%q) = %v, %v; want no restriction", rules, l, err)
		}
		if allow, err := l.Check(t.Context(), "10.0.0.1"); allow != nil || err != nil {
			t.Fatalf("nil List: check %v, %v", allow != nil, err)
		}
	}
}

func TestParseRejectsMalformedRules(t *testing.T) {
	for _, rule := range []string{"https://collector", "collector:4318", "*", "a.*.example.com", "10.0.0.0/33", "*.", "exa mple.com"} {
		if _, err := Parse([]string{rule}, nil); err == nil {
			t.Errorf("rule %q accepted", rule)
		}
	}
}

// TestResolvesNames uses the system resolver: localhost is a name that
// resolves into a range a platform would forbid.
func TestResolvesNames(t *testing.T) {
	outside, err := Parse([]string{"10.0.0.0/8"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outside.Check(t.Context(), "localhost"); err == nil {
		t.Fatal("localhost admitted with only 10.0.0.0/8 allowed")
	}
	loopback, err := Parse([]string{"127.0.0.0/8", "::1/128"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	allow, err := loopback.Check(t.Context(), "localhost")
	if err != nil || allow == nil {
		t.Fatalf("localhost with loopback allowed: check %v, %v", allow != nil, err)
	}
}

// TestControlRefusesBeforeConnecting dials a real listener through a
// dialer whose Control refuses its address: the dial fails with
// ErrAddrNotAllowed and the listener accepts nothing.
func TestControlRefusesBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan bool, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.Close()
		}
		accepted <- err == nil
	}()
	only10, _ := Parse([]string{"10.0.0.0/8"}, nil)
	allow, _ := only10.Check(t.Context(), "10.0.0.1")
	d := net.Dialer{Control: Control(allow)}
	if c, err := d.DialContext(t.Context(), "tcp", ln.Addr().String()); !errors.Is(err, ErrAddrNotAllowed) {
		if c != nil {
			_ = c.Close()
		}
		t.Fatalf("dial: %v, want ErrAddrNotAllowed", err)
	}
	_ = ln.Close()
	if <-accepted {
		t.Fatal("the listener accepted a connection")
	}
	if Control(nil) != nil {
		t.Error("Control(nil) checks addresses")
	}
}
