package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// List is a set of endpoints. A nil *List admits every host.
//
// Rules are host names ("collector.monitoring.svc"), host globs
// ("*.example.com": any name ending in ".example.com", not example.com
// itself), IP addresses and CIDRs ("10.0.0.0/8"). They match a host,
// whatever its port. A host name is admitted when a name rule matches it,
// or else when every address it resolves to lies inside an address rule;
// in that second case every connection's address must be checked again
// when it is dialled (Check returns that check). A name admitted by a name
// rule is trusted whatever it resolves to: whoever controls its DNS is
// trusted by the rule.
type List struct {
	hosts    map[string]bool
	suffixes []string // ".example.com" for "*.example.com"
	prefixes []netip.Prefix
	resolver Resolver
}

// Parse compiles rules; no rules means no restriction (nil). resolver may
// be nil for the system resolver.
func Parse(rules []string, resolver Resolver) (*List, error) {
	l := &List{hosts: map[string]bool{}, resolver: resolver}
	if l.resolver == nil {
		l.resolver = net.DefaultResolver
	}
	var errs []error
	for _, raw := range rules {
		rule := strings.ToLower(strings.TrimSpace(raw))
		if rule == "" {
			continue
		}
		if p, err := netip.ParsePrefix(rule); err == nil {
			l.prefixes = append(l.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(rule); err == nil {
			l.prefixes = append(l.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		name, glob := strings.CutPrefix(rule, "*.")
		if !validHostName(name) {
			errs = append(errs, fmt.Errorf("allowed endpoint %q is neither a host name, a glob *.domain, an IP address nor a CIDR", raw))
			continue
		}
		if glob {
			l.suffixes = append(l.suffixes, "."+name)
		} else {
			l.hosts[name] = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(l.hosts) == 0 && len(l.suffixes) == 0 && len(l.prefixes) == 0 {
		return nil, nil
	}
	return l, nil
}

// Refused is the error of a host the list does not admit. Its message
// completes "... the allow-list admits" and names the host but never an
// address it resolved to; whether it could not be resolved or resolved
// outside the CIDRs is not told apart, so that a refusal does not say
// which internal names exist.
type Refused struct {
	// Host is the host refused, as asked.
	Host string
	why  string
}

func (r *Refused) Error() string { return r.why }

// Check decides whether host (a host name or an IP address, without port
// or brackets) may be connected to. It returns the check to apply to the
// address of every connection opened to it (nil: any address), or a
// *Refused error.
func (l *List) Check(ctx context.Context, host string) (func(netip.Addr) bool, error) {
	if l == nil {
		return nil, nil
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		if !l.allowed(a) {
			return nil, &Refused{Host: host, why: fmt.Sprintf("address %s is outside the CIDRs", host)}
		}
		return l.allowed, nil
	}
	if l.nameAllowed(host) {
		return nil, nil
	}
	if len(l.prefixes) == 0 {
		return nil, &Refused{Host: host, why: fmt.Sprintf("host %s matches none of the host names", host)}
	}
	outside := &Refused{Host: host,
		why: fmt.Sprintf("host %s matches no host name and does not resolve only to addresses inside the CIDRs", host)}
	addrs, err := l.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return nil, outside
	}
	for _, a := range addrs {
		if !l.allowed(a) {
			return nil, outside
		}
	}
	return l.allowed, nil
}

func (l *List) nameAllowed(host string) bool {
	if l.hosts[host] {
		return true
	}
	for _, s := range l.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

func (l *List) allowed(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ErrAddrNotAllowed is the error of a connection Control refused.
var ErrAddrNotAllowed = errors.New("the address connected to is not admitted")

// Control returns a net.Dialer Control function that refuses, before it
// is opened, every connection whose address allow does not admit; nil
// when allow is nil (any address). Its error wraps ErrAddrNotAllowed and
// names no address.
func Control(allow func(netip.Addr) bool) func(network, address string, c syscall.RawConn) error {
	if allow == nil {
		return nil
	}
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !allow(ap.Addr()) {
			return ErrAddrNotAllowed
		}
		return nil
	}
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
