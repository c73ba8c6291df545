package controllers_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// startRemote starts a second control plane, its own etcd and API server:
// a remote cluster whose objects the operator's cluster does not have.
func startRemote(t *testing.T) *testenv.Env {
	t.Helper()
	remote, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := remote.Stop(); err != nil {
			t.Errorf("stopping the remote control plane: %v", err)
		}
	})
	return remote
}

func kubeconfigSecret(ns, name string, data []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data: map[string][]byte{v1alpha1.DefaultKubeConfigKey: data}}
}

func remoteAccess(ns, name, secret, clusterName string) *v1alpha1.RemoteClusterAccess {
	return &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.RemoteClusterAccessSpec{ClusterName: clusterName,
			KubeConfigSecretRef: &v1alpha1.KubeConfigSecretReference{Name: secret}}}
}

func waitAccess(t *testing.T, rca *v1alpha1.RemoteClusterAccess, status metav1.ConditionStatus, reason string) {
	t.Helper()
	waitReadyWithin(t, 30*time.Second, rca, func() []metav1.Condition { return rca.Status.Conditions }, status, reason)
}

func waitMetric(t *testing.T, m *v1alpha1.Metric, status metav1.ConditionStatus, reason string) {
	t.Helper()
	waitReadyWithin(t, 40*time.Second, m, func() []metav1.Condition { return m.Status.Conditions }, status, reason)
}

func remoteKey(ns, name string) registry.InformerKey {
	return registry.InformerKey{Cluster: ns + "/" + name, GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: ns}
}

// TestRemoteMetricReadsTheRemoteCluster runs two control planes: the
// operator's, and a remote one reached through a kubeconfig Secret. A
// polling and an event-driven Metric count the remote cluster's
// ConfigMaps under cluster="blue" (not the local ones of the same
// namespace), one event-driven watch serves them at the remote API server,
// a remote change shows at once in event-driven mode; stopping the remote
// API server makes only the remote metrics ClusterUnreachable while a
// local metric stays current, and starting it again brings them back with
// correct counts; pointing the Secret at another API server switches the
// values without a restart, and a new spec.clusterName renames the series;
// deleting the access withdraws them.
func TestRemoteMetricReadsTheRemoteCluster(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	remote := startRemote(t)
	const user = "metrics-operator-remote"
	srv, kc := stoppableCluster(t, remote, user)

	ns := "remote-read"
	createNamespace(t, ns)
	if err := remote.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := remote.Client.Create(ctx, configMap(ns, fmt.Sprintf("r%d", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	create(t, configMap(ns, "local-1", nil))

	create(t, kubeconfigSecret(ns, "blue-kubeconfig", kc))
	rca := remoteAccess(ns, "blue-access", "blue-kubeconfig", "blue")
	create(t, rca)
	waitAccess(t, rca, metav1.ConditionTrue, v1alpha1.ReasonReady)
	if rca.Status.Server != srv.Host {
		t.Errorf("status.server %q, want %q", rca.Status.Server, srv.Host)
	}

	ref := &v1alpha1.NamespacedReference{Name: "blue-access"}
	// "configmap" and "configmaps": kinds match as kubectl matches them, and
	// the series name the kind as the API server does.
	polled := newMetric(ns, "remote-polled", v1alpha1.MetricSpec{Name: "remote_polled",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "configmap"}, Namespace: ns, RemoteClusterAccessRef: ref})
	events := eventDriven(ns, "remote-events", v1alpha1.MetricSpec{Name: "remote_events",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns, RemoteClusterAccessRef: ref})
	local := eventDriven(ns, "local-events", v1alpha1.MetricSpec{Name: "remote_test_local",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "configmaps"}, Namespace: ns})
	// Two more event-driven metrics on the same remote resource share its watch.
	byTeam := eventDriven(ns, "remote-by-team", v1alpha1.MetricSpec{Name: "remote_by_team",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns, RemoteClusterAccessRef: ref,
		Projections: []v1alpha1.Projection{{Name: "team", FieldPath: "metadata.labels.team", Default: &apiextensionsv1.JSON{Raw: []byte(`"none"`)}}}})
	named := eventDriven(ns, "remote-named", v1alpha1.MetricSpec{Name: "remote_named",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns, RemoteClusterAccessRef: ref,
		FieldSelector: "metadata.name=r0"})
	create(t, polled, events, local, byTeam, named)

	polledSample := func(n int) string { return fmt.Sprintf("{cluster=blue,kind=ConfigMap,version=v1} %d", n) }
	eventsSample := func(n int) string { return fmt.Sprintf("{cluster=blue,kind=ConfigMap,version=v1} %d", n) }
	localSample := func(n int) string { return fmt.Sprintf("{cluster=local,kind=ConfigMap,version=v1} %d", n) }
	waitSamples(t, "remote_polled", polledSample(3))
	waitSamples(t, "remote_events", eventsSample(3))
	waitSamples(t, "remote_test_local", localSample(1))
	waitSamples(t, "remote_by_team", "{cluster=blue,kind=ConfigMap,team=none,version=v1} 3")
	waitSamples(t, "remote_named", "{cluster=blue,kind=ConfigMap,version=v1} 1")

	if err := remote.Client.Create(ctx, configMap(ns, "r3", nil)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitSamplesWithin(t, 5*time.Second, "remote_events", eventsSample(4))
	t.Logf("remote change on /metrics (event-driven) after %v", time.Since(start).Round(time.Millisecond))
	waitSamples(t, "remote_polled", polledSample(4))
	if !informerActive(remoteKey(ns, "blue-access")) {
		t.Errorf("no watch keyed by the remote cluster: %v", op.Informers.Active())
	}
	if watches, err := srv.CountRequests(user, "watch", ns); err != nil || watches != 1 {
		t.Errorf("%d WATCHes at the remote API server (%v), want 1 for the three event-driven metrics", watches, err)
	}

	// The remote API server goes away: only its metrics fail.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, events, metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable)
	waitMetric(t, polled, metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable)
	t.Logf("unreachable: %s", findReady(events).Message)
	waitSamples(t, "remote_events")
	waitSamples(t, "remote_polled")
	create(t, configMap(ns, "local-2", nil))
	waitSamplesWithin(t, 5*time.Second, "remote_test_local", localSample(2))
	waitMetric(t, local, metav1.ConditionTrue, v1alpha1.ReasonReady)
	// Written through the remote's other API server while this one is down.
	if err := remote.Client.Create(ctx, configMap(ns, "r4", nil)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitSamplesWithin(t, 40*time.Second, "remote_events", eventsSample(5))
	waitSamplesWithin(t, 40*time.Second, "remote_polled", polledSample(5))
	waitMetric(t, events, metav1.ConditionTrue, v1alpha1.ReasonReady)
	waitMetric(t, polled, metav1.ConditionTrue, v1alpha1.ReasonReady)

	// The Secret now points at the operator's own cluster: the values
	// follow without a restart, still under cluster="blue".
	localKC, err := env.WriteAdminKubeconfig(t.TempDir(), "remote-rotated")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(localKC)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, clientKey(ns, "blue-kubeconfig"), secret); err != nil {
		t.Fatal(err)
	}
	secret.Data[v1alpha1.DefaultKubeConfigKey] = data
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitSamplesWithin(t, 30*time.Second, "remote_events", eventsSample(2))
	waitSamples(t, "remote_polled", polledSample(2))

	// A new spec.clusterName renames the series of both modes at once.
	testenv.Update(t, env.Client, rca, func() { rca.Spec.ClusterName = "navy" })
	waitSamplesWithin(t, 10*time.Second, "remote_events", "{cluster=navy,kind=ConfigMap,version=v1} 2")
	waitSamplesWithin(t, 10*time.Second, "remote_polled", "{cluster=navy,kind=ConfigMap,version=v1} 2")

	// Without its access, the metrics are withdrawn and the watch stops.
	if err := env.Client.Delete(ctx, rca); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, events, metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable)
	waitMetric(t, polled, metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable)
	waitSamples(t, "remote_events")
	testenv.Eventually(t, 10*time.Second, func() error {
		if informerActive(remoteKey(ns, "blue-access")) {
			return fmt.Errorf("the remote watch still runs")
		}
		if n := len(op.Clusters.Open()); n != 0 {
			return fmt.Errorf("%d remote connections open", n)
		}
		return nil
	})
	waitSamples(t, "remote_test_local", localSample(2))
}

// TestRemoteClusterAccessReasons: each way a RemoteClusterAccess can be
// wrong has its reason, and a Metric reading through it reports
// ClusterUnreachable; the kubeconfigs' token is in no status and no event.
func TestRemoteClusterAccessReasons(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "remote-reasons"
	createNamespace(t, ns)
	const token = "rca-t0ken-Must-Not-Leak-9d3f"
	ca := base64.StdEncoding.EncodeToString(env.Config.CAData)
	kubeconfig := func(server, user string) []byte {
		return fmt.Appendf(nil, `apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: u, user: %s}]
`, server, ca, user)
	}
	tokenUser := fmt.Sprintf("{token: %s}", token)
	create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other-key", Namespace: ns}, Data: map[string][]byte{"config": []byte(token)}},
		kubeconfigSecret(ns, "garbage", []byte("{"+token)),
		kubeconfigSecret(ns, "exec", kubeconfig(env.Config.Host, "{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/true}}")),
		kubeconfigSecret(ns, "bad-token", kubeconfig(env.Config.Host, tokenUser)),
		kubeconfigSecret(ns, "nowhere", kubeconfig("https://127.0.0.1:1", tokenUser)),
	)
	cases := map[string]struct{ secret, reason string }{
		"missing":   {"does-not-exist", v1alpha1.ReasonSecretNotFound},
		"other-key": {"other-key", v1alpha1.ReasonSecretKeyMissing},
		"garbage":   {"garbage", v1alpha1.ReasonInvalidKubeConfig},
		"exec":      {"exec", v1alpha1.ReasonInvalidKubeConfig},
		"bad-token": {"bad-token", v1alpha1.ReasonForbidden},
		"nowhere":   {"nowhere", v1alpha1.ReasonClusterUnreachable},
	}
	for name, c := range cases {
		create(t, remoteAccess(ns, name, c.secret, ""))
	}
	for name, c := range cases {
		rca := &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		waitAccess(t, rca, metav1.ConditionFalse, c.reason)
		t.Logf("%s: %s: %s", name, c.reason, meta.FindStatusCondition(rca.Status.Conditions, v1alpha1.ConditionReady).Message)
	}

	target := v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	var metrics []*v1alpha1.Metric
	for _, access := range []string{"no-such-access", "missing", "nowhere"} {
		ref := &v1alpha1.NamespacedReference{Name: access}
		metrics = append(metrics,
			newMetric(ns, "polled-"+access, v1alpha1.MetricSpec{Target: target, Namespace: ns, RemoteClusterAccessRef: ref}),
			eventDriven(ns, "events-"+access, v1alpha1.MetricSpec{Target: target, Namespace: ns, RemoteClusterAccessRef: ref}))
	}
	for _, m := range metrics {
		create(t, m)
	}
	for _, m := range metrics {
		waitMetric(t, m, metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable)
		if fams, err := scrape.Families(metricsURL); err == nil {
			if _, ok := fams[m.MetricName()]; ok {
				t.Errorf("%s is served", m.Name)
			}
		}
	}
	t.Logf("metric: %s", findReady(metrics[0]).Message)

	// The access recovers by itself once its Secret exists.
	create(t, kubeconfigSecret(ns, "does-not-exist", kubeconfig(env.Config.Host, tokenUser)))
	waitAccess(t, &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: "missing", Namespace: ns}},
		metav1.ConditionFalse, v1alpha1.ReasonForbidden)

	places := map[string][]byte{}
	var accesses v1alpha1.RemoteClusterAccessList
	if err := env.Client.List(ctx, &accesses, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	places["access statuses"], _ = json.Marshal(accesses.Items)
	var ms v1alpha1.MetricList
	if err := env.Client.List(ctx, &ms, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	places["metric statuses"], _ = json.Marshal(ms.Items)
	var evs corev1.EventList
	if err := env.Client.List(ctx, &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) == 0 {
		t.Error("no events")
	}
	places["events"], _ = json.Marshal(evs.Items)
	for place, b := range places {
		if strings.Contains(string(b), token) {
			t.Errorf("%s holds the kubeconfig's token", place)
		}
	}
}

// TestRemoteClusterAccessTokenRequest reaches a remote API server with
// tokens the operator requests for a local ServiceAccount. The remote is a
// second API server of the operator's own control plane that accepts the
// audience "metrics-remote" only (the first one does not), so the
// ServiceAccount's RBAC applies there. The token is renewed (every 11 s in
// this suite) without the watch at the remote being opened again or any
// LIST, and the metric stays current; an audience the operator's own API
// server accepts is refused.
func TestRemoteClusterAccessTokenRequest(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "remote-token"
	createNamespace(t, ns)
	srv, err := env.StartAPIServer(t.TempDir(), map[string]string{"api-audiences": "metrics-remote"})
	if err != nil {
		t.Fatal(err)
	}
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "reader"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cluster", Namespace: ns}, Data: map[string][]byte{
			"host": []byte(srv.Host), "audience": []byte("metrics-remote"), "caData": env.Config.CAData}},
		configMap(ns, "a", nil), configMap(ns, "b", nil))
	rca := &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: "token-access", Namespace: ns},
		Spec: v1alpha1.RemoteClusterAccessSpec{RemoteClusterConfig: &v1alpha1.RemoteClusterConfig{
			ServiceAccountName: "reader", ClusterSecretRef: v1alpha1.NamespacedReference{Name: "cluster"}}}}
	create(t, rca)
	waitAccess(t, rca, metav1.ConditionTrue, v1alpha1.ReasonReady)
	if rca.Status.TokenExpirationTime == nil || time.Until(rca.Status.TokenExpirationTime.Time) < 30*time.Minute {
		t.Fatalf("status.tokenExpirationTime %v, want about an hour ahead", rca.Status.TokenExpirationTime)
	}
	m := eventDriven(ns, "through-token", v1alpha1.MetricSpec{Name: "remote_token_configmaps",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns,
		RemoteClusterAccessRef: &v1alpha1.NamespacedReference{Name: "token-access"}})
	create(t, m)
	sample := func(n int) string { return fmt.Sprintf("{cluster=token-access,kind=ConfigMap,version=v1} %d", n) }
	waitSamples(t, "remote_token_configmaps", sample(2))

	user := "system:serviceaccount:" + ns + ":reader"
	count := func(verb string) int {
		n, err := srv.CountRequests(user, verb, ns)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	lists, watches := count("list")+count("watchlist"), count("watch")
	if watches != 1 {
		t.Errorf("%d WATCHes at the remote after sync, want 1", watches)
	}
	// Two renewals.
	expiries := []time.Time{rca.Status.TokenExpirationTime.Time}
	testenv.Eventually(t, 60*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(rca), rca); err != nil {
			return err
		}
		if e := rca.Status.TokenExpirationTime.Time; !e.Equal(expiries[len(expiries)-1]) {
			expiries = append(expiries, e)
		}
		if len(expiries) < 3 {
			return fmt.Errorf("token expirations seen: %v", expiries)
		}
		return nil
	})
	t.Logf("token expirations: %v", expiries)
	create(t, configMap(ns, "c", nil))
	waitSamplesWithin(t, 5*time.Second, "remote_token_configmaps", sample(3))
	if l, w := count("list")+count("watchlist"), count("watch"); l != lists || w != watches {
		t.Errorf("after two renewals: %d LISTs and %d WATCHes at the remote, want %d and %d: renewal restarted the watch", l, w, lists, watches)
	}
	waitMetric(t, m, metav1.ConditionTrue, v1alpha1.ReasonReady)

	// An audience the operator's own API server accepts is refused.
	localAudience := defaultAudience(t, ns)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "local-audience", Namespace: ns}, Data: map[string][]byte{
		"host": []byte(srv.Host), "audience": []byte(localAudience), "caData": env.Config.CAData}})
	bad := &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: "local-audience", Namespace: ns},
		Spec: v1alpha1.RemoteClusterAccessSpec{RemoteClusterConfig: &v1alpha1.RemoteClusterConfig{
			ServiceAccountName: "reader", ClusterSecretRef: v1alpha1.NamespacedReference{Name: "local-audience"}}}}
	create(t, bad)
	waitAccess(t, bad, metav1.ConditionFalse, v1alpha1.ReasonForbidden)
	t.Logf("local audience: %s", meta.FindStatusCondition(bad.Status.Conditions, v1alpha1.ConditionReady).Message)
	if bad.Status.TokenExpirationTime != nil {
		t.Error("a refused token's expiry is reported")
	}
}

// defaultAudience returns the audience of tokens the operator's API
// server issues when none is asked for: one it accepts itself.
func defaultAudience(t *testing.T, ns string) string {
	t.Helper()
	tr := &authenticationv1.TokenRequest{}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns}}
	if err := env.Client.SubResource("token").Create(t.Context(), sa, tr); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tr.Status.Token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Aud []string `json:"aud"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || len(claims.Aud) == 0 {
		t.Fatalf("token claims %s: %v", payload, err)
	}
	return claims.Aud[0]
}

// TestRemoteClusterAccessTokenTrustedByAnotherCluster runs the token path
// across two control planes: the remote one trusts the operator cluster's
// ServiceAccount issuer for the audience "metrics-remote" through a
// structured authentication configuration, and its own RBAC grants the
// ServiceAccount's identity (prefixed "remote:") read access. A Metric
// reads the remote cluster's ConfigMaps through tokens the operator
// requests locally.
func TestRemoteClusterAccessTokenTrustedByAnotherCluster(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "remote-trust"
	createNamespace(t, ns)
	// The remote API server fetches the issuer's discovery document and
	// keys without credentials.
	create(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "remote-trust-issuer-discovery"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects: []rbacv1.Subject{{Kind: "Group", Name: "system:unauthenticated", APIGroup: "rbac.authorization.k8s.io"}}})

	// The issuer's discovery document names its keys at the API server's
	// advertised address, which envtest makes unreachable; a second API
	// server of the operator's control plane advertises 127.0.0.1 and
	// serves the same document and keys.
	issuerSrv, err := env.StartAPIServer(t.TempDir(), map[string]string{"external-hostname": "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	remote := startRemote(t)
	dir := t.TempDir()
	issuer := strings.TrimSuffix(env.Config.Host, "/") + "/"
	authn := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %q
    discoveryURL: %q
    audiences: [metrics-remote]
    certificateAuthority: %q
  claimMappings:
    username: {claim: sub, prefix: "remote:"}
`, issuer, issuerSrv.Host+"/.well-known/openid-configuration", string(env.Config.CAData))
	authnPath := dir + "/authentication.yaml"
	if err := os.WriteFile(authnPath, []byte(authn), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := remote.StartAPIServer(dir, map[string]string{"authentication-config": authnPath})
	if err != nil {
		t.Fatal(err)
	}
	identity := "remote:system:serviceaccount:" + ns + ":reader"
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "reader"},
			Subjects: []rbacv1.Subject{{Kind: "User", Name: identity, APIGroup: "rbac.authorization.k8s.io"}}},
		configMap(ns, "remote-a", nil), configMap(ns, "remote-b", nil), configMap(ns, "remote-c", nil),
	} {
		if err := remote.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cluster", Namespace: ns}, Data: map[string][]byte{
			"host": []byte(srv.Host), "audience": []byte("metrics-remote"), "caData": remote.Config.CAData}},
		configMap(ns, "local-only", nil))
	rca := &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: "trusted", Namespace: ns},
		Spec: v1alpha1.RemoteClusterAccessSpec{ClusterName: "green", RemoteClusterConfig: &v1alpha1.RemoteClusterConfig{
			ServiceAccountName: "reader", ClusterSecretRef: v1alpha1.NamespacedReference{Name: "cluster"}}}}
	create(t, rca)
	waitAccess(t, rca, metav1.ConditionTrue, v1alpha1.ReasonReady)
	m := eventDriven(ns, "trusted", v1alpha1.MetricSpec{Name: "remote_trusted_configmaps",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns,
		RemoteClusterAccessRef: &v1alpha1.NamespacedReference{Name: "trusted"}})
	create(t, m)
	waitSamples(t, "remote_trusted_configmaps", "{cluster=green,kind=ConfigMap,version=v1} 3")
	if n, err := srv.CountRequests(identity, "watch", ns); err != nil || n != 1 {
		t.Errorf("%d WATCHes by %s at the remote (%v), want 1", n, identity, err)
	}
}
