// Package datasink turns a DataSink object and the Secrets it references
// into a Target: everything an OTLP exporter needs (protocol, address, TLS
// material, headers) and a fingerprint that changes whenever any of it
// does, so exporters are rebuilt only when they must be.
//
// It reads through a client.Reader and never writes; failures are
// *reason.Error values carrying the condition reason a user sees.
package datasink
