package operator_test

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestObjectLimitPerWatch runs the operator with --max-objects-per-watch
// 50 beside 60 ConfigMaps: an event-driven and a polling Metric of them
// report ObjectLimitExceeded naming the flag and export nothing, while a
// Metric of the Secrets of the same namespace serves its value and takes
// changes. Once 20 ConfigMaps are deleted, both come back by themselves
// (the watch at its next try, the poll at its next interval) with the
// right value.
func TestObjectLimitPerWatch(t *testing.T) {
	testenv.Require(t, env)
	const ns = "object-limit"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	createConfigMaps(t, ns, 60)
	for i := range 3 {
		mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("s-", i), Namespace: ns}})
	}
	events, polled := limitMetric(ns, "object_limit_", "events", "ConfigMap", true, false), limitMetric(ns, "object_limit_", "polled", "ConfigMap", false, false)
	secrets := limitMetric(ns, "object_limit_", "secrets", "Secret", true, false)
	url := runWithObjectLimit(t, ns, 2*time.Second, events, polled, secrets)

	for _, m := range []*v1alpha1.Metric{events, polled} {
		c := waitMetricReason(t, ns, m.Name, v1alpha1.ReasonObjectLimitExceeded, 60*time.Second)
		if c.Status != metav1.ConditionFalse {
			t.Errorf("%s: Ready=%s, want False", m.Name, c.Status)
		}
		for _, want := range []string{"50", "--max-objects-per-watch", "configmaps in namespace " + ns, "cluster local"} {
			if !strings.Contains(c.Message, want) {
				t.Errorf("%s: the message does not name %q: %s", m.Name, want, c.Message)
			}
		}
	}
	waitFamily(t, url, "object_limit_secrets", "{cluster=local,kind=Secret,version=v1} 3")
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s-3", Namespace: ns}})
	waitFamily(t, url, "object_limit_secrets", "{cluster=local,kind=Secret,version=v1} 4")
	fams, err := scrape.Families(url)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"object_limit_events", "object_limit_polled"} {
		if got := scrape.Samples(fams, name); len(got) != 0 {
			t.Errorf("%s over the limit serves %v", name, scrape.Strings(got))
		}
	}

	for i := range 20 {
		if err := env.Client.Delete(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i), Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	waitFamilyWithin(t, 60*time.Second, url, "object_limit_events", "{cluster=local,kind=ConfigMap,version=v1} 40")
	t.Logf("event-driven metric back %s after the deletions", time.Since(start).Round(time.Second))
	waitFamilyWithin(t, 60*time.Second, url, "object_limit_polled", "{cluster=local,kind=ConfigMap,version=v1} 40")
	t.Logf("polling metric back %s after the deletions", time.Since(start).Round(time.Second))
	for _, m := range []*v1alpha1.Metric{events, polled, secrets} {
		waitMetricReason(t, ns, m.Name, v1alpha1.ReasonReady, 30*time.Second)
	}
}

// waitFamilyWithin is waitFamily with a timeout of its own.
func waitFamilyWithin(t *testing.T, timeout time.Duration, url, family string, want ...string) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		fams, err := scrape.Families(url)
		if err != nil {
			return err
		}
		got := scrape.Strings(scrape.Samples(fams, family))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("%s = %v, want %v", family, got, want)
		}
		return nil
	})
}

// remoteProxy is a remote cluster's API server as a tenant may run it:
// the test control plane behind a TLS proxy that refuses streamed lists,
// so that watches list page by page, unless intercept (if not nil)
// answers a request itself, which it does when it returns true. It
// returns the kubeconfig that reaches it.
func remoteProxy(t *testing.T, intercept func(w http.ResponseWriter, r *http.Request) bool) (kubeconfig []byte) {
	t.Helper()
	target, err := neturl.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Transport: transport, FlushInterval: -1,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header.Del("Authorization") // the proxy's own credentials apply
		}}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if intercept != nil && intercept(w, r) {
			return
		}
		if r.URL.Query().Get("sendInitialEvents") == "true" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"BadRequest","code":400,"message":"streamed lists are not served"}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: u, user: {token: not-used}}]
`, srv.URL, base64.StdEncoding.EncodeToString(ca))
}

// TestObjectLimitRemoteCluster reads 60 ConfigMaps through a
// RemoteClusterAccess whose API server pages its lists (remoteProxy),
// with --max-objects-per-watch 50: the event-driven and the polling
// Metric of them report ObjectLimitExceeded naming the flag and the
// remote cluster and export nothing, while a Metric of the same remote
// cluster's Secrets, and one of the local cluster's, serve.
func TestObjectLimitRemoteCluster(t *testing.T) {
	testenv.Require(t, env)
	const ns = "object-limit-remote"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	createConfigMaps(t, ns, 60)
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns},
		Data: map[string][]byte{"kubeconfig": remoteProxy(t, nil)}})
	mustCreate(t, &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns},
		Spec: v1alpha1.RemoteClusterAccessSpec{KubeConfigSecretRef: &v1alpha1.KubeConfigSecretReference{Name: "tenant"}}})
	const prefix = "object_limit_remote_"
	events, polled := limitMetric(ns, prefix, "events", "ConfigMap", true, true), limitMetric(ns, prefix, "polled", "ConfigMap", false, true)
	secrets, local := limitMetric(ns, prefix, "secrets", "Secret", true, true), limitMetric(ns, prefix, "local", "Secret", true, false)
	url := runWithObjectLimit(t, ns, 0, events, polled, secrets, local)

	for _, m := range []*v1alpha1.Metric{events, polled} {
		c := waitMetricReason(t, ns, m.Name, v1alpha1.ReasonObjectLimitExceeded, 60*time.Second)
		if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "--max-objects-per-watch") ||
			!strings.Contains(c.Message, "cluster "+ns+"/tenant") {
			t.Errorf("%s: Ready=%s: %s; want False naming the flag and the cluster", m.Name, c.Status, c.Message)
		}
	}
	waitFamilyWithin(t, 60*time.Second, url, "object_limit_remote_secrets", "{cluster=tenant,kind=Secret,version=v1} 1")
	waitFamilyWithin(t, 30*time.Second, url, "object_limit_remote_local", "{cluster=local,kind=Secret,version=v1} 1")
	fams, err := scrape.Families(url)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"object_limit_remote_events", "object_limit_remote_polled"} {
		if got := scrape.Samples(fams, name); len(got) != 0 {
			t.Errorf("%s over the limit serves %v", name, scrape.Strings(got))
		}
	}
}

// limitMetric is a Metric prefix+name counting the objects of kind in ns,
// through the RemoteClusterAccess "tenant" if remote, polled every 10 s
// or event-driven.
func limitMetric(ns, prefix, name, kind string, eventDriven, remote bool) *v1alpha1.Metric {
	m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.MetricSpec{Name: prefix + name, Namespace: ns, EventDriven: ptr.To(eventDriven),
			Target:   v1alpha1.GroupVersionKind{Version: "v1", Kind: kind},
			Interval: metav1.Duration{Duration: 10 * time.Second}}}
	if remote {
		m.Spec.RemoteClusterAccessRef = &v1alpha1.NamespacedReference{Name: "tenant"}
	}
	return m
}

// runWithObjectLimit creates metrics, deleted when the test ends (other
// tests' operators run without the limit), and runs the operator over ns
// with --max-objects-per-watch 50 and the given retry (zero: the
// default); it returns the operator's /metrics URL.
func runWithObjectLimit(t *testing.T, ns string, retry time.Duration, metrics ...*v1alpha1.Metric) string {
	t.Helper()
	return runMetrics(t, operator.Options{Namespace: ns, MaxObjectsPerWatch: 50, ObjectLimitRetry: retry}, metrics...)
}

// runMetrics creates metrics, deleted when the test ends, and runs the
// operator with opts, a free /metrics address and pushes at most every
// 200 ms; it returns the /metrics URL.
func runMetrics(t *testing.T, opts operator.Options, metrics ...*v1alpha1.Metric) string {
	t.Helper()
	for _, m := range metrics {
		mustCreate(t, m)
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), m) })
	}
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	opts.MetricsAddr, opts.ProbeAddr, opts.MinExportInterval = addr, "0", 200*time.Millisecond
	run(t, env.Config, opts)
	return "http://" + addr + "/metrics"
}
