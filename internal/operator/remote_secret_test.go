package operator_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestRemoteCredentialsNeverLeave runs the operator binary at debug
// verbosity with RemoteClusterAccesses whose kubeconfigs carry tokens:
// one that works (a ServiceAccount token, read through by a polling and
// an event-driven Metric), one the API server refuses, one in a
// kubeconfig that does not parse. Neither token, nor any JWT, appears in
// /metrics, the statuses of the accesses and Metrics, the events, or the
// operator's log.
func TestRemoteCredentialsNeverLeave(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "remote-credentials"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns}})
	mustCreate(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}}})
	mustCreate(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}}})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "one", Namespace: ns}})
	tr := &authenticationv1.TokenRequest{}
	if err := env.Client.SubResource("token").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns}}, tr); err != nil {
		t.Fatal(err)
	}
	working := tr.Status.Token
	const refused = "refused-T0ken-5ee1-Do-Not-Leak"
	kubeconfig := func(token string) []byte {
		return fmt.Appendf(nil, `apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: u, user: {token: %s}}]
`, env.Config.Host, base64.StdEncoding.EncodeToString(env.Config.CAData), token)
	}
	secrets := map[string][]byte{
		"working": kubeconfig(working),
		"refused": kubeconfig(refused),
		"garbled": append([]byte("users: [{token: "+refused+", "), kubeconfig(working)...),
	}
	for name, data := range secrets {
		mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Data: map[string][]byte{"kubeconfig": data}})
		mustCreate(t, &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.RemoteClusterAccessSpec{KubeConfigSecretRef: &v1alpha1.KubeConfigSecretReference{Name: name}}})
	}
	p := startProcess(t, ns, "--datasink-recheck-interval=1s")
	var metrics []*v1alpha1.Metric
	for name := range secrets {
		for _, eventDriven := range []bool{false, true} {
			mode := map[bool]string{false: "polled", true: "events"}[eventDriven]
			m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: mode + "-" + name, Namespace: ns},
				Spec: v1alpha1.MetricSpec{Name: "remote_cred_" + mode + "_" + name, EventDriven: ptr.To(eventDriven),
					Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns,
					Interval:               metav1.Duration{Duration: 10 * time.Second},
					RemoteClusterAccessRef: &v1alpha1.NamespacedReference{Name: name}}}
			mustCreate(t, m)
			metrics = append(metrics, m)
		}
	}
	waitFamily(t, p.metricsURL, "remote_cred_polled_working", "{cluster=working,kind=ConfigMap,version=v1} 1")
	waitFamily(t, p.metricsURL, "remote_cred_events_working", "{cluster=working,kind=ConfigMap,version=v1} 1")
	for _, m := range metrics {
		want, reason := metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable
		switch m.Spec.RemoteClusterAccessRef.Name {
		case "working":
			want, reason = metav1.ConditionTrue, v1alpha1.ReasonReady
		case "refused":
			reason = v1alpha1.ReasonForbidden // 401 from the API server
		}
		waitCondition(t, m, want, reason)
	}
	// Let a few rechecks and polls run and every status and event be written.
	time.Sleep(12 * time.Second)

	places := map[string][]byte{}
	resp, err := http.Get(p.metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	places["/metrics"], _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
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
	var events corev1.EventList
	if err := env.Client.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	places["events"], _ = json.Marshal(events.Items)
	places["operator log"] = p.log(t)
	if !bytes.Contains(places["operator log"], []byte("Starting operator")) {
		t.Fatal("the operator's log was not captured")
	}
	for place, content := range places {
		// "eyJ" starts every JWT: the base64 of `{"`.
		for _, leak := range []string{working, refused, "eyJhbGci"} {
			if bytes.Contains(content, []byte(leak)) {
				t.Errorf("%s holds a token (%.12s...)", place, leak)
			}
		}
	}
}

// TestRemoteClusterAccessCrossNamespaceRefs: with --no-cross-namespace-refs
// a RemoteClusterAccess may name neither a kubeconfig Secret nor a
// ServiceAccount or cluster Secret of another namespace; the operator does
// not read them.
func TestRemoteClusterAccessCrossNamespaceRefs(t *testing.T) {
	testenv.Require(t, env)
	tenant, other := "rca-xref-tenant", "rca-xref-other"
	for _, ns := range []string{tenant, other} {
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	accesses := []*v1alpha1.RemoteClusterAccess{
		{ObjectMeta: metav1.ObjectMeta{Name: "kubeconfig-elsewhere", Namespace: tenant},
			Spec: v1alpha1.RemoteClusterAccessSpec{KubeConfigSecretRef: &v1alpha1.KubeConfigSecretReference{Name: "kc", Namespace: other}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "sa-elsewhere", Namespace: tenant},
			Spec: v1alpha1.RemoteClusterAccessSpec{RemoteClusterConfig: &v1alpha1.RemoteClusterConfig{
				ServiceAccountName: "admin", ServiceAccountNamespace: other,
				ClusterSecretRef: v1alpha1.NamespacedReference{Name: "cluster"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "cluster-secret-elsewhere", Namespace: tenant},
			Spec: v1alpha1.RemoteClusterAccessSpec{RemoteClusterConfig: &v1alpha1.RemoteClusterConfig{
				ServiceAccountName: "reader", ClusterSecretRef: v1alpha1.NamespacedReference{Name: "cluster", Namespace: other}}}},
	}
	for _, a := range accesses {
		mustCreate(t, a)
	}
	run(t, env.Config, operator.Options{MetricsAddr: "0", ProbeAddr: "0", NoCrossNamespaceRefs: true})
	for _, a := range accesses {
		testenv.Eventually(t, 30*time.Second, func() error {
			if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(a), a); err != nil {
				return err
			}
			c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Reason != v1alpha1.ReasonCrossNamespaceReference {
				return fmt.Errorf("%s: Ready %+v, want %s", a.Name, c, v1alpha1.ReasonCrossNamespaceReference)
			}
			return nil
		})
	}
}
