package operator_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestSecureMetricsNeedAuthorization checks the default serving of
// /metrics: HTTPS, and only for callers the API server authenticates and
// allows to get /metrics.
func TestSecureMetricsNeedAuthorization(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "secure-metrics"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus", Namespace: ns}})
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "stranger", Namespace: ns}})
	grant(t, "metrics-reader", rbacv1.Subject{Kind: "ServiceAccount", Name: "prometheus", Namespace: ns},
		rbacv1.PolicyRule{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}})
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}

	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	run(t, env.Config, operator.Options{MetricsAddr: addr, MetricsSecure: true, ProbeAddr: "0", Namespace: ns})

	// The operator's certificate is self-signed; what is under test is
	// who may read, not the certificate.
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // see above
	get := func(bearer string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return resp.StatusCode, string(body), nil
	}
	allowed, denied := token("prometheus"), token("stranger")
	for _, tc := range []struct {
		who    string
		bearer string
		want   int
	}{
		{"anonymous", "", http.StatusUnauthorized},
		{"a ServiceAccount without RBAC", denied, http.StatusForbidden},
		{"a ServiceAccount allowed to get /metrics", allowed, http.StatusOK},
	} {
		testenv.Eventually(t, 30*time.Second, func() error {
			code, body, err := get(tc.bearer)
			if err != nil {
				return err
			}
			if code != tc.want {
				return fmt.Errorf("%s got %d, want %d: %s", tc.who, code, tc.want, body)
			}
			return nil
		})
	}
}
