package datasink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Egress is the set of endpoints DataSinks may send to, for platforms that
// must keep tenants from making the operator call internal services. A nil
// *Egress admits every endpoint.
//
// Rules are host names ("collector.monitoring.svc"), host globs
// ("*.example.com": any name ending in ".example.com", not example.com
// itself), IP addresses and CIDRs ("10.0.0.0/8"). They match the endpoint's
// host, whatever its port. A host name is admitted when a name rule matches
// it, or else when every address it resolves to lies inside an address
// rule; in that second case the exporter checks the address of every
// connection it opens again, so a name that later resolves elsewhere (DNS
// rebinding) still reaches no other address. A name admitted by a name rule
// is trusted whatever it resolves to: whoever controls its DNS is trusted
// by the rule.
type Egress struct {
	hosts    map[string]bool
	suffixes []string // ".example.com" for "*.example.com"
	prefixes []netip.Prefix
	resolver Resolver
}

// ParseEgress compiles rules; no rules means no restriction (nil). resolver
// may be nil for the system resolver.
func ParseEgress(rules []string, resolver Resolver) (*Egress, error) {
	e := &Egress{hosts: map[string]bool{}, resolver: resolver}
	if e.resolver == nil {
		e.resolver = net.DefaultResolver
	}
	var errs []error
	for _, raw := range rules {
		rule := strings.ToLower(strings.TrimSpace(raw))
		if rule == "" {
			continue
		}
		if p, err := netip.ParsePrefix(rule); err == nil {
			e.prefixes = append(e.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(rule); err == nil {
			e.prefixes = append(e.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		name, glob := strings.CutPrefix(rule, "*.")
		if !validHostName(name) {
			errs = append(errs, fmt.Errorf("allowed endpoint %q is neither a host name, a glob *.domain, an IP address nor a CIDR", raw))
			continue
		}
		if glob {
			e.suffixes = append(e.suffixes, "."+name)
		} else {
			e.hosts[name] = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(e.hosts) == 0 && len(e.suffixes) == 0 && len(e.prefixes) == 0 {
		return nil, nil
	}
	return e, nil
}

// Check decides whether a DataSink may send to endpoint (a DataSink's
// spec.connection.endpoint). It returns the check the exporter applies to
// the address of every connection it opens (nil: any address), or a
// *reason.Error with reason EndpointNotAllowed or InvalidEndpoint. The
// message names the host (from the spec) but never a resolved address, so
// that a tenant cannot map the platform's internal DNS through it.
func (e *Egress) Check(ctx context.Context, endpoint string) (func(netip.Addr) bool, error) {
	if e == nil {
		return nil, nil
	}
	_, hostPort, _, _, err := ParseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(hostPort)
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		if !e.addrAllowed(a) {
			return nil, notAllowed("address %s is outside the CIDRs", host)
		}
		return e.addrAllowed, nil
	}
	if e.nameAllowed(host) {
		return nil, nil
	}
	if len(e.prefixes) == 0 {
		return nil, notAllowed("host %s matches none of the host names", host)
	}
	addrs, err := e.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		// The resolver's error names the DNS server; say only what failed.
		return nil, notAllowed("host %s matches no host name and could not be resolved to check its addresses against the CIDRs", host)
	}
	for _, a := range addrs {
		if !e.addrAllowed(a) {
			return nil, notAllowed("host %s matches no host name and resolves to an address outside the CIDRs", host)
		}
	}
	return e.addrAllowed, nil
}

func (e *Egress) nameAllowed(host string) bool {
	if e.hosts[host] {
		return true
	}
	for _, s := range e.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

func (e *Egress) addrAllowed(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range e.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func notAllowed(format string, args ...any) error {
	return invalid(v1alpha1.ReasonEndpointNotAllowed,
		"spec.connection.endpoint is not allowed: "+format+
			" the operator's --datasink-allowed-endpoints admits; nothing is sent to it (ask the platform team which endpoints are allowed)",
		args...)
}

// validHostName accepts DNS names of letters, digits, '-' and '_' in
// dot-separated labels, which is what endpoint hosts are.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !hostNameRune(r) {
				return false
			}
		}
	}
	return true
}

func hostNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}
