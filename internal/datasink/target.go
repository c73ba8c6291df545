package datasink

import (
	"crypto/tls"
	"net/netip"
)

// Protocol is the OTLP transport.
type Protocol string

const (
	// ProtocolHTTP is OTLP/HTTP with protobuf bodies.
	ProtocolHTTP Protocol = "http"
	// ProtocolGRPC is OTLP/gRPC.
	ProtocolGRPC Protocol = "grpc"
)

// Target is a resolved DataSink: what an exporter is built from.
type Target struct {
	// Protocol is OTLP/HTTP or OTLP/gRPC.
	Protocol Protocol
	// Endpoint is host:port.
	Endpoint string
	// URLPath is the path data is POSTed to (OTLP/HTTP only), for example
	// "/v1/metrics".
	URLPath string
	// Insecure is true for http:// and grpc:// endpoints (no TLS).
	Insecure bool
	// Headers are sent with every export (the API key goes here).
	Headers map[string]string
	// TLS is the client TLS configuration for https and grpcs endpoints:
	// the CA pool and the client certificate, when configured. Nil when
	// Insecure.
	TLS *tls.Config
	// AllowAddr, when set, is asked before every connection to the sink
	// whether its address may be dialled (see Egress); nil allows any.
	AllowAddr func(netip.Addr) bool
	// Fingerprint identifies the configuration including secret material;
	// two Targets with the same Fingerprint export identically.
	Fingerprint string
}
