// Package certs generates throw-away X.509 material in memory for tests that
// need TLS or mTLS: a CA, a server certificate for the loopback addresses and
// a client certificate, all as PEM, which is what Kubernetes Secrets and the
// OpenTelemetry Collector's configtls hold.
//
// It writes nothing to disk and must never be used outside tests: keys are
// short-lived and the CA is trusted by nothing but the test that made it.
package certs
