package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// validity is long enough for any test run and short enough that leaked
// material is worthless soon.
const validity = 24 * time.Hour

// KeyPair is a certificate and its private key, both PEM encoded. The key is
// PKCS #8 ("PRIVATE KEY"), which crypto/tls, the Collector and kubectl's TLS
// Secrets all accept.
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// TLSCertificate parses the pair for use in a tls.Config.
func (kp KeyPair) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
}

// CA is a self-signed certificate authority that issues leaf certificates.
type CA struct {
	// CertPEM is the CA certificate: what clients put in their root pool
	// and servers in their client CA pool.
	CertPEM []byte

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA creates a self-signed CA with the given common name.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl, err := template(commonName)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{CertPEM: encodeCert(der), cert: cert, key: key}, nil
}

// CertPool returns a pool that trusts only this CA.
func (ca *CA) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Server issues a server certificate valid for the given host names and IP
// addresses (entries that parse as IPs become IP SANs).
func (ca *CA) Server(hosts ...string) (KeyPair, error) {
	name := "server"
	if len(hosts) > 0 {
		name = hosts[0]
	}
	tmpl, err := template(name)
	if err != nil {
		return KeyPair{}, err
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	return ca.issue(tmpl)
}

// Client issues a client certificate for mTLS with the given common name.
func (ca *CA) Client(commonName string) (KeyPair, error) {
	tmpl, err := template(commonName)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.issue(tmpl)
}

func (ca *CA) issue(tmpl *x509.Certificate) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate key for %q: %w", tmpl.Subject.CommonName, err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("sign certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode key for %q: %w", tmpl.Subject.CommonName, err)
	}
	return KeyPair{
		CertPEM: encodeCert(der),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Set is the usual material of one TLS test: a CA, a server certificate for
// localhost, 127.0.0.1 and ::1, and a client certificate, all from that CA.
type Set struct {
	CA     *CA
	Server KeyPair
	Client KeyPair
}

// Generate creates a fresh Set.
func Generate() (*Set, error) {
	ca, err := NewCA("metrics-operator test CA")
	if err != nil {
		return nil, err
	}
	server, err := ca.Server("localhost", "127.0.0.1", "::1")
	if err != nil {
		return nil, err
	}
	client, err := ca.Client("metrics-operator test client")
	if err != nil {
		return nil, err
	}
	return &Set{CA: ca, Server: server, Client: client}, nil
}

func template(commonName string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	// Backdated so that small clock differences between the processes of a
	// test never make a fresh certificate "not yet valid".
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"metrics-operator tests"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
	}, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
