package clusters

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

const secretToken = "kc-t0ken-Very-Secret-4411"

func kubeconfig(cluster, user string) string {
	return `apiVersion: v1
kind: Config
current-context: c
contexts:
- name: c
  context: {cluster: k, user: u}
clusters:
- name: k
  cluster:
` + cluster + `
users:
- name: u
  user:
` + user + "\n"
}

func TestFromKubeConfig(t *testing.T) {
	okCluster := "    server: https://api.example.com:6443\n    certificate-authority-data: " + "Zm9v"
	okUser := "    token: " + secretToken
	tests := []struct {
		name, data string
		wantReason string
		wantInMsg  string
	}{
		{name: "token", data: kubeconfig(okCluster, okUser)},
		{name: "basic auth", data: kubeconfig(okCluster, "    username: a\n    password: "+secretToken)},
		{name: "not a kubeconfig", data: "{" + secretToken, wantReason: v1alpha1.ReasonInvalidKubeConfig, wantInMsg: "cannot be parsed"},
		{name: "no server", data: kubeconfig("    insecure-skip-tls-verify: true", okUser),
			wantReason: v1alpha1.ReasonInvalidKubeConfig, wantInMsg: "no server"},
		{name: "server not a URL", data: kubeconfig("    server: ftp://x", okUser),
			wantReason: v1alpha1.ReasonInvalidKubeConfig, wantInMsg: "not an http(s) URL"},
		{name: "credentials in the server URL", data: kubeconfig("    server: https://admin:"+secretToken+"@a", okUser),
			wantReason: v1alpha1.ReasonInvalidKubeConfig, wantInMsg: "credentials in its server URL"},
		{name: "CA file", data: kubeconfig("    server: https://a\n    certificate-authority: /etc/ca.pem", okUser),
			wantReason: v1alpha1.ReasonInvalidKubeConfig, wantInMsg: "certificate-authority file"},
		{name: "exec plugin", data: kubeconfig(okCluster, "    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, id]}"),
			wantReason: v1alpha1.ReasonInvalidKubeConfig, wantInMsg: "exec"},
		{name: "auth provider", data: kubeconfig(okCluster, "    auth-provider: {name: oidc}"),
			wantReason: v1alpha1.ReasonInvalidKubeConfig, wantInMsg: "auth-provider"},
		{name: "token file", data: kubeconfig(okCluster, "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token"),
			wantReason: v1alpha1.ReasonInvalidKubeConfig, wantInMsg: "tokenFile"},
		{name: "client cert files", data: kubeconfig(okCluster, "    client-certificate: /c.pem\n    client-key: /k.pem"),
			wantReason: v1alpha1.ReasonInvalidKubeConfig, wantInMsg: "client-certificate client-key"},
		{name: "no current context", data: strings.Replace(kubeconfig(okCluster, okUser), "current-context: c", "current-context: other", 1),
			wantReason: v1alpha1.ReasonInvalidKubeConfig, wantInMsg: "current-context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def, err := FromKubeConfig([]byte(tt.data), `key "kubeconfig" of Secret ns/s`)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if def.Config.BearerToken != "" {
					t.Error("the token must not stay in the rest.Config: the transport reads it from Token")
				}
				if def.Server() != "https://api.example.com:6443" {
					t.Errorf("server %q", def.Server())
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if got := reason.Of(err, ""); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
			if !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("message %q does not mention %q", err, tt.wantInMsg)
			}
			if strings.Contains(err.Error(), secretToken) {
				t.Errorf("message quotes the secret: %q", err)
			}
		})
	}
}

func TestFingerprintIgnoresTheTokenOnly(t *testing.T) {
	base := Definition{Config: &rest.Config{Host: "https://a", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("ca")}}, Token: "one"}
	renewed := Definition{Config: rest.CopyConfig(base.Config), Token: "two"}
	if base.Fingerprint() != renewed.Fingerprint() {
		t.Error("a new token changed the fingerprint: renewal would restart the watches")
	}
	for name, change := range map[string]func(*rest.Config){
		"host":        func(c *rest.Config) { c.Host = "https://b" },
		"CA":          func(c *rest.Config) { c.CAData = []byte("other") },
		"client cert": func(c *rest.Config) { c.CertData = []byte("cert") },
		"insecure":    func(c *rest.Config) { c.Insecure = true },
		"password":    func(c *rest.Config) { c.Password = "p" },
		"proxy":       func(c *rest.Config) { c.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: "proxy:3128"}) },
	} {
		d := Definition{Config: rest.CopyConfig(base.Config)}
		change(d.Config)
		if d.Fingerprint() == base.Fingerprint() {
			t.Errorf("a change of the %s kept the fingerprint: the connection would not be rebuilt", name)
		}
	}
}

// TestBearerReadsTheCurrentToken sends requests through the transport a
// connection uses and checks each carries the token current when it was
// sent: a renewal applies to the next request without a new transport.
func TestBearerReadsTheCurrentToken(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer srv.Close()
	tok := &Token{}
	tok.Set("first")
	cfg := &rest.Config{Host: srv.URL}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &bearer{token: tok, next: rt} })
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	get := func() {
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get()
	tok.Set("second")
	get()
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"Bearer first", "Bearer second"}; strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("Authorization headers %v, want %v", seen, want)
	}
}
