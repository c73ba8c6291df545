package datasink

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// invalid is a configuration problem of a DataSink that the user must fix.
var invalid = reason.New

// defaultPorts are the OTLP defaults, used when the endpoint names none.
var defaultPorts = map[string]string{"http": "4318", "https": "443", "grpc": "4317", "grpcs": "443"}

// ParseEndpoint splits an endpoint URL into protocol, host:port, path and
// whether TLS is used. The API server already checks the scheme; this
// repeats the check because a Target must never be built from a bad URL.
func ParseEndpoint(raw string) (proto Protocol, hostPort, path string, useTLS bool, err error) {
	u, perr := url.Parse(raw)
	if perr != nil {
		return "", "", "", false, invalid(v1alpha1.ReasonInvalidEndpoint,
			"spec.connection.endpoint %q is not a URL: %v", raw, perr)
	}
	port, ok := defaultPorts[u.Scheme]
	if !ok {
		return "", "", "", false, invalid(v1alpha1.ReasonInvalidEndpoint,
			"spec.connection.endpoint %q: scheme must be http, https (OTLP/HTTP) or grpc, grpcs (OTLP/gRPC)", raw)
	}
	if u.Hostname() == "" {
		return "", "", "", false, invalid(v1alpha1.ReasonInvalidEndpoint,
			"spec.connection.endpoint %q has no host", raw)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	hostPort = net.JoinHostPort(u.Hostname(), port)
	useTLS = u.Scheme == "https" || u.Scheme == "grpcs"
	if u.Scheme == "grpc" || u.Scheme == "grpcs" {
		if u.Path != "" && u.Path != "/" {
			return "", "", "", false, invalid(v1alpha1.ReasonInvalidEndpoint,
				"spec.connection.endpoint %q: an OTLP/gRPC endpoint is host:port without a path", raw)
		}
		return ProtocolGRPC, hostPort, "", useTLS, nil
	}
	path = u.EscapedPath()
	if path == "" || path == "/" {
		// A bare host is almost always an OTLP/HTTP collector; the spec's
		// default path is what such users mean.
		path = "/v1/metrics"
	}
	return ProtocolHTTP, hostPort, path, useTLS, nil
}

// Resolve reads the Secrets a DataSink references and returns its Target.
// A missing Secret or key, an unparsable certificate or a bad endpoint is
// a *reason.Error; anything else (the API server failing) is returned wrapped.
func Resolve(ctx context.Context, r client.Reader, ds *v1alpha1.DataSink) (*Target, error) {
	proto, hostPort, path, useTLS, err := ParseEndpoint(ds.Spec.Connection.Endpoint)
	if err != nil {
		return nil, err
	}
	t := &Target{Protocol: proto, Endpoint: hostPort, URLPath: path, Insecure: !useTLS}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%t\x00", proto, hostPort, path, useTLS)

	secrets := secretReader{ctx: ctx, r: r, namespace: ds.Namespace, cache: map[string]*corev1.Secret{}}
	if useTLS {
		t.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if auth := ds.Spec.Authentication; auth != nil {
		switch {
		case auth.APIKey != nil:
			key, err := secrets.value(auth.APIKey.SecretKeyRef, "spec.authentication.apiKey.secretKeyRef")
			if err != nil {
				return nil, err
			}
			t.Headers = map[string]string{"Authorization": "Api-Token " + string(key)}
		case auth.Certificate != nil:
			if err := applyCertificate(t, &secrets, auth.Certificate); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range sortedKeys(t.Headers) {
		fmt.Fprintf(h, "h:%s=%s\x00", k, t.Headers[k])
	}
	for _, v := range secrets.used {
		h.Write(v)
		h.Write([]byte{0})
	}
	t.Fingerprint = hex.EncodeToString(h.Sum(nil))
	return t, nil
}

func applyCertificate(t *Target, s *secretReader, c *v1alpha1.CertificateAuthentication) error {
	if t.TLS == nil {
		return invalid(v1alpha1.ReasonInvalidEndpoint,
			"certificate authentication needs a TLS endpoint: use https:// or grpcs://")
	}
	certPEM, err := s.value(c.ClientCertSecretKeyRef, "spec.authentication.certificate.clientCertSecretKeyRef")
	if err != nil {
		return err
	}
	keyPEM, err := s.value(c.ClientKeySecretKeyRef, "spec.authentication.certificate.clientKeySecretKeyRef")
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The parse error names no key material, but say only what is wrong.
		return invalid(v1alpha1.ReasonInvalidCertificate,
			"client certificate %s/%s and key %s/%s do not form a PEM certificate and matching private key",
			c.ClientCertSecretKeyRef.Name, c.ClientCertSecretKeyRef.Key, c.ClientKeySecretKeyRef.Name, c.ClientKeySecretKeyRef.Key)
	}
	t.TLS.Certificates = []tls.Certificate{pair}
	if c.CACertSecretKeyRef != nil {
		caPEM, err := s.value(*c.CACertSecretKeyRef, "spec.authentication.certificate.caCertSecretKeyRef")
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return invalid(v1alpha1.ReasonInvalidCertificate,
				"CA bundle %s/%s holds no PEM certificate", c.CACertSecretKeyRef.Name, c.CACertSecretKeyRef.Key)
		}
		t.TLS.RootCAs = pool
	}
	return nil
}

type secretReader struct {
	ctx       context.Context
	r         client.Reader
	namespace string
	cache     map[string]*corev1.Secret
	used      [][]byte
}

func (s *secretReader) value(ref v1alpha1.SecretKeySelector, field string) ([]byte, error) {
	sec, ok := s.cache[ref.Name]
	if !ok {
		sec = &corev1.Secret{}
		err := s.r.Get(s.ctx, types.NamespacedName{Namespace: s.namespace, Name: ref.Name}, sec)
		switch {
		case apierrors.IsNotFound(err):
			return nil, invalid(v1alpha1.ReasonSecretNotFound,
				"%s: Secret %s/%s does not exist; create it in the DataSink's namespace", field, s.namespace, ref.Name)
		case apierrors.IsForbidden(err):
			return nil, invalid(v1alpha1.ReasonForbidden,
				"%s: the operator may not read Secret %s/%s; grant it get on secrets", field, s.namespace, ref.Name)
		case err != nil:
			return nil, fmt.Errorf("reading Secret %s/%s: %w", s.namespace, ref.Name, err)
		}
		s.cache[ref.Name] = sec
	}
	v, ok := sec.Data[ref.Key]
	if !ok || len(v) == 0 {
		return nil, invalid(v1alpha1.ReasonSecretKeyMissing,
			"%s: Secret %s/%s has no key %q (keys present: %v)", field, s.namespace, ref.Name, ref.Key, sortedKeys(sec.Data))
	}
	s.used = append(s.used, v)
	return v, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
