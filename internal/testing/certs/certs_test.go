package certs

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestGenerateChainsToCA(t *testing.T) {
	set, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		pair  KeyPair
		usage x509.ExtKeyUsage
		host  string
	}{
		"server": {set.Server, x509.ExtKeyUsageServerAuth, "127.0.0.1"},
		"client": {set.Client, x509.ExtKeyUsageClientAuth, ""},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.pair.TLSCertificate(); err != nil {
				t.Fatalf("key pair does not load: %v", err)
			}
			block, _ := pem.Decode(tc.pair.CertPEM)
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cert.Verify(x509.VerifyOptions{
				Roots:     set.CA.CertPool(),
				DNSName:   tc.host,
				KeyUsages: []x509.ExtKeyUsage{tc.usage},
			})
			if err != nil {
				t.Fatalf("does not verify against the CA: %v", err)
			}
		})
	}
}
