package clusters

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// Definition says how to reach a cluster.
type Definition struct {
	// Config reaches the API server, without a bearer token.
	Config *rest.Config
	// Token is the bearer token requests carry ("" for none). It may change
	// without a rebuild.
	Token string
}

// Server returns the API server's URL.
func (d Definition) Server() string { return d.Config.Host }

// Fingerprint identifies what a connection is built from, except the
// bearer token: a change of it rebuilds the connection.
func (d Definition) Fingerprint() string {
	c := d.Config
	h := sha256.New()
	for _, s := range []string{c.Host, proxyOf(c), c.APIPath, c.ServerName, fmt.Sprint(c.Insecure),
		string(c.CAData), string(c.CertData), string(c.KeyData),
		c.Username, c.Password, c.Impersonate.UserName, c.Impersonate.UID, fmt.Sprint(c.Impersonate.Groups),
		fmt.Sprint(c.Impersonate.Extra)} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// proxyOf is the proxy URL c's kubeconfig names (proxy-url), "" for none.
func proxyOf(c *rest.Config) string {
	if c.Proxy == nil {
		return ""
	}
	p, err := c.Proxy(&http.Request{URL: serverURL(c.Host)})
	if err != nil || p == nil {
		return ""
	}
	return p.String()
}

// FromKubeConfig parses a kubeconfig (YAML or JSON) and returns the
// Definition of its current context. where names the Secret key it came
// from, for messages. A kubeconfig that asks the operator to run a
// program (exec, auth-provider) or read a file of its own file system
// (tokenFile, certificate and key paths) is refused: it comes from a
// user, and either would let that user act with whatever the operator's
// pod holds.
func FromKubeConfig(data []byte, where string) (Definition, error) {
	invalid := func(format string, args ...any) (Definition, error) {
		return Definition{}, reason.New(v1alpha1.ReasonInvalidKubeConfig, "the kubeconfig in %s "+format, append([]any{where}, args...)...)
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		// The parser's message may quote the document: not repeated.
		return invalid("cannot be parsed as a kubeconfig (YAML or JSON)")
	}
	ctxName := cfg.CurrentContext
	if ctxName == "" && len(cfg.Contexts) == 1 {
		for name := range cfg.Contexts {
			ctxName = name
		}
	}
	kctx, ok := cfg.Contexts[ctxName]
	if !ok {
		return invalid("has no current-context naming one of its contexts")
	}
	cluster, ok := cfg.Clusters[kctx.Cluster]
	if !ok {
		return invalid("has no cluster named by its current context")
	}
	if cluster.Server == "" {
		return invalid("names no server for the cluster of its current context")
	}
	if cluster.CertificateAuthority != "" {
		return invalid("names a certificate-authority file: embed the CA as certificate-authority-data")
	}
	if u, err := url.Parse(cluster.Server); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return invalid("has a server that is not an http(s) URL")
	} else if u.User != nil {
		// The server URL is reported in status.
		return invalid("has credentials in its server URL: put them in the user's fields")
	}
	user := cfg.AuthInfos[kctx.AuthInfo]
	if user == nil {
		user = clientcmdapi.NewAuthInfo()
	}
	if err := refuseLocalCredentials(user); err != nil {
		return invalid("%s", err.Error())
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*cfg, ctxName, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return invalid("is incomplete or inconsistent")
	}
	token := rc.BearerToken
	rc.BearerToken = ""
	return Definition{Config: rc, Token: token}, nil
}

// refuseLocalCredentials refuses the credential sources that would run a
// program or read a file in the operator's pod.
func refuseLocalCredentials(u *clientcmdapi.AuthInfo) error {
	var bad []string
	if u.Exec != nil {
		bad = append(bad, "exec")
	}
	if u.AuthProvider != nil {
		bad = append(bad, "auth-provider")
	}
	if u.TokenFile != "" {
		bad = append(bad, "tokenFile")
	}
	if u.ClientCertificate != "" {
		bad = append(bad, "client-certificate")
	}
	if u.ClientKey != "" {
		bad = append(bad, "client-key")
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("uses %v, which the operator refuses (it would run a program or read a file of the operator's pod): "+
		"embed the credentials (token, client-certificate-data, client-key-data)", bad)
}

// FromClusterSecret returns the Definition of a cluster reached with a
// token requested for a ServiceAccount: host and caData are the cluster
// secret's keys.
func FromClusterSecret(host string, caData []byte, token string) (Definition, error) {
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return Definition{}, errors.New("its \"host\" is not an https URL without credentials")
	}
	return Definition{Config: &rest.Config{Host: host, TLSClientConfig: rest.TLSClientConfig{CAData: caData}}, Token: token}, nil
}
