// Package datasink turns a DataSink object and the Secrets it references
// into a Target: everything an OTLP exporter needs (protocol, address, TLS
// material, headers) and a fingerprint that changes whenever any of it
// does, so exporters are rebuilt only when they must be.
//
// Egress is the platform's list of endpoints DataSinks may send to
// (--datasink-allowed-endpoints, an egress.List), checked before a
// DataSink resolves and, for endpoints admitted by address, on every
// connection an exporter opens.
//
// It reads through a client.Reader and never writes; failures are
// *reason.Error values carrying the condition reason a user sees.
package datasink
