package datasink

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/egress"
)

// Egress is the set of endpoints DataSinks may send to
// (--datasink-allowed-endpoints), for platforms that must keep tenants
// from making the operator call internal services. A nil *Egress admits
// every endpoint. The rules and how a host is matched are egress.List's.
type Egress struct{ list *egress.List }

// ParseEgress compiles rules; no rules means no restriction (nil). resolver
// may be nil for the system resolver.
func ParseEgress(rules []string, resolver egress.Resolver) (*Egress, error) {
	l, err := egress.Parse(rules, resolver)
	if err != nil || l == nil {
		return nil, err
	}
	return &Egress{list: l}, nil
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
	allow, err := e.list.Check(ctx, host)
	if refused := (*egress.Refused)(nil); errors.As(err, &refused) {
		return nil, invalid(v1alpha1.ReasonEndpointNotAllowed,
			"spec.connection.endpoint is not allowed: %s the operator's --datasink-allowed-endpoints admits; "+
				"nothing is sent to it (ask the platform team which endpoints are allowed)", refused.Error())
	}
	return allow, err
}
