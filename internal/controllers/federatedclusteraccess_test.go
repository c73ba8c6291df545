package controllers_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/controllers"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// adminKubeconfig returns an administrator's kubeconfig for e.
func adminKubeconfig(t *testing.T, e *testenv.Env, name string) []byte {
	t.Helper()
	path, err := e.WriteAdminKubeconfig(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func clusterConfigMap(ns, name, role string, data map[string]string) *corev1.ConfigMap {
	cm := configMap(ns, name, map[string]string{"fed": role})
	cm.Data = data
	return cm
}

func federatedAccess(ns, name string, spec v1alpha1.FederatedClusterAccessSpec) *v1alpha1.FederatedClusterAccess {
	spec.Target = v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	return &v1alpha1.FederatedClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}

// clusterReasons renders status.clusters as "clusterName=reason" ("Ready"
// for ready clusters), in status order.
func clusterReasons(fca *v1alpha1.FederatedClusterAccess) string {
	var parts []string
	for _, c := range fca.Status.Clusters {
		r := c.Reason
		if c.Ready {
			r = "Ready"
		}
		parts = append(parts, c.ClusterName+"="+r)
	}
	return strings.Join(parts, ",")
}

// waitClusters waits until the access reports want as clusterReasons, with
// the counts that go with it.
func waitClusters(t *testing.T, timeout time.Duration, fca *v1alpha1.FederatedClusterAccess, want string) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(fca), fca); err != nil {
			return err
		}
		got := clusterReasons(fca)
		if got != want {
			return fmt.Errorf("clusters %q, want %q", got, want)
		}
		ready := strings.Count(want, "=Ready")
		if n := len(fca.Status.Clusters); int(fca.Status.ClusterCount) != n || int(fca.Status.ReadyClusterCount) != ready {
			return fmt.Errorf("clusterCount %d, readyClusterCount %d, want %d, %d",
				fca.Status.ClusterCount, fca.Status.ReadyClusterCount, n, ready)
		}
		return nil
	})
}

func memberNames(nn types.NamespacedName) []string {
	var out []string
	for _, c := range op.Federated.Clusters(nn) {
		out = append(out, c.Name)
	}
	slices.Sort(out)
	return out
}

// TestFederatedClusterAccessInline discovers clusters from ConfigMaps
// holding kubeconfigs inline: one reaching a second control plane, one
// garbled. The garbled one is reported for itself (its token in no
// status) while the other is ready; a ConfigMap created later brings a
// third cluster without a restart, and deleting one closes its
// connection and stops its watches.
func TestFederatedClusterAccessInline(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	remote := startRemote(t)
	ns := "fed-inline"
	createNamespace(t, ns)
	const token = "fca-t0ken-Must-Not-Leak-7c1e"
	garbled := "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: " + token + "}}]\nclusters: [oops"
	create(t,
		clusterConfigMap(ns, "blue", "inline", map[string]string{"kubeconfig": string(adminKubeconfig(t, remote, "fed-blue"))}),
		clusterConfigMap(ns, "garbled", "inline", map[string]string{"kubeconfig": garbled}),
		clusterConfigMap(ns, "unrelated", "other", map[string]string{"kubeconfig": garbled}))
	fca := federatedAccess(ns, "planes", v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "data.kubeconfig", LabelSelector: "fed=inline", Namespace: ns})
	create(t, fca)
	waitClusters(t, 30*time.Second, fca, "blue=Ready,garbled=InvalidKubeConfig")
	waitAccess := func(status metav1.ConditionStatus, reason string) {
		t.Helper()
		waitReadyWithin(t, 30*time.Second, fca, func() []metav1.Condition { return fca.Status.Conditions }, status, reason)
	}
	waitAccess(metav1.ConditionFalse, v1alpha1.ReasonInvalidKubeConfig)
	raw, _ := json.Marshal(fca.Status)
	if strings.Contains(string(raw), token) {
		t.Errorf("the kubeconfig's token is in the status: %s", raw)
	}
	t.Logf("garbled: %s", fca.Status.Clusters[1].Message)
	t.Logf("access: %s", meta.FindStatusCondition(fca.Status.Conditions, v1alpha1.ConditionReady).Message)

	nn := types.NamespacedName{Namespace: ns, Name: "planes"}
	blueKey := controllers.FederatedClusterKey(nn, ns, "blue")
	// A federated metric reads the cluster through its connection and watches.
	conn, err := op.Clusters.Acquire(blueKey, "test/fed-inline")
	if err != nil {
		t.Fatal(err)
	}
	if conn.Name != "blue" || !conn.Remote {
		t.Errorf("connection %q remote=%v, want blue, remote", conn.Name, conn.Remote)
	}
	if _, err := conn.Clients.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).
		Get(ctx, "kube-system", metav1.GetOptions{}); err != nil {
		t.Errorf("reading the remote cluster through the connection: %v", err)
	}
	if got := memberNames(nn); !slices.Equal(got, []string{"blue", "garbled"}) {
		t.Errorf("members %v, want blue, garbled", got)
	}

	// A third cluster, without a restart.
	start := time.Now()
	create(t, clusterConfigMap(ns, "local", "inline", map[string]string{"kubeconfig": string(adminKubeconfig(t, env, "fed-local"))}))
	waitClusters(t, 5*time.Second, fca, "blue=Ready,garbled=InvalidKubeConfig,local=Ready")
	t.Logf("new cluster in status after %v", time.Since(start).Round(time.Millisecond))

	// The garbled one is fixed: the access becomes Ready.
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, clientKey(ns, "garbled"), cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["kubeconfig"] = string(adminKubeconfig(t, remote, "fed-garbled"))
	if err := env.Client.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitClusters(t, 10*time.Second, fca, "blue=Ready,garbled=Ready,local=Ready")
	waitAccess(metav1.ConditionTrue, v1alpha1.ReasonReady)

	// Reconciles (every second here) read the watch's store: no LIST.
	path := "/api/v1/namespaces/" + ns + "/configmaps"
	lists := requests.Reads(path)
	time.Sleep(3 * time.Second)
	if n := requests.Reads(path) - lists; n != 0 {
		t.Errorf("%d LISTs of the target during three rechecks, want 0", n)
	}
	if err := requests.CheckSharedWatch(path); err != nil {
		t.Error(err)
	}

	// Deleting the object closes its cluster's connection.
	if err := env.Client.Delete(ctx, configMap(ns, "blue", nil)); err != nil {
		t.Fatal(err)
	}
	waitClusters(t, 10*time.Second, fca, "garbled=Ready,local=Ready")
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, open := op.Clusters.Open()[blueKey]; open {
			return fmt.Errorf("the connection of blue is still open")
		}
		if _, err := op.Clusters.Clients(blueKey); err == nil {
			return fmt.Errorf("blue's clients are still served to its watches")
		}
		return nil
	})
	if got := memberNames(nn); !slices.Equal(got, []string{"garbled", "local"}) {
		t.Errorf("members %v, want garbled, local", got)
	}

	// Deleting the access removes every connection and its discovery watch.
	if err := env.Client.Delete(ctx, fca); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := op.Federated.Clusters(nn); len(got) != 0 {
			return fmt.Errorf("members %v remain", got)
		}
		for _, k := range op.Discovery.Active() {
			if k.Namespace == ns {
				return fmt.Errorf("discovery watch %v still runs", k)
			}
		}
		return nil
	})
	op.Clusters.Release("test/fed-inline")
}

// TestFederatedClusterAccessSecrets discovers clusters whose kubeconfigs
// are in Secrets the objects name: a missing Secret, a missing key and an
// API server that does not answer are reported for their cluster alone, and pointing one cluster's Secret at
// another API server reconnects that cluster and no other.
func TestFederatedClusterAccessSecrets(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	remote := startRemote(t)
	ns := "fed-secrets"
	createNamespace(t, ns)
	if err := remote.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-on-remote"}}); err != nil {
		t.Fatal(err)
	}
	kc := adminKubeconfig(t, remote, "fed-secrets")
	create(t,
		kubeconfigSecret(ns, "green-kc", kc),
		kubeconfigSecret(ns, "teal-kc", kc),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other-key", Namespace: ns}, Data: map[string][]byte{"config": kc}},
		clusterConfigMap(ns, "green", "secret", map[string]string{"name": "green-kc"}),
		clusterConfigMap(ns, "teal", "secret", map[string]string{"name": "teal-kc", "namespace": ns, "key": "kubeconfig"}),
		clusterConfigMap(ns, "absent", "secret", map[string]string{"name": "no-such-secret"}),
		clusterConfigMap(ns, "wrongkey", "secret", map[string]string{"name": "other-key"}),
		kubeconfigSecret(ns, "nowhere-kc", []byte(`apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: abc}}]
`)),
		clusterConfigMap(ns, "nowhere", "secret", map[string]string{"name": "nowhere-kc"}))
	fca := federatedAccess(ns, "by-secret", v1alpha1.FederatedClusterAccessSpec{SecretRefPath: "data", LabelSelector: "fed=secret"})
	create(t, fca)
	waitClusters(t, 30*time.Second, fca, "absent=SecretNotFound,green=Ready,nowhere=ClusterUnreachable,teal=Ready,wrongkey=SecretKeyMissing")

	nn := types.NamespacedName{Namespace: ns, Name: "by-secret"}
	namespaces := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	acquire := func(name string) *clusters.Connection {
		t.Helper()
		c, err := op.Clusters.Acquire(controllers.FederatedClusterKey(nn, ns, name), "test/fed-secrets/"+name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	green, teal := acquire("green"), acquire("teal")
	if _, err := green.Clients.Dynamic.Resource(namespaces).Get(ctx, "only-on-remote", metav1.GetOptions{}); err != nil {
		t.Fatalf("green does not read the remote cluster: %v", err)
	}

	// green's Secret now points at the operator's own cluster.
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, clientKey(ns, "green-kc"), secret); err != nil {
		t.Fatal(err)
	}
	secret.Data[v1alpha1.DefaultKubeConfigKey] = adminKubeconfig(t, env, "fed-green-rotated")
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testenv.Eventually(t, 20*time.Second, func() error {
		c := acquire("green")
		if c == green {
			return fmt.Errorf("green's connection was not rebuilt")
		}
		_, err := c.Clients.Dynamic.Resource(namespaces).Get(ctx, "only-on-remote", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("green still reads the remote cluster: %w", err)
		}
		return nil
	})
	t.Logf("green reconnected after %v", time.Since(start).Round(time.Millisecond))
	if acquire("teal") != teal {
		t.Errorf("teal's connection was rebuilt by a change of green's Secret")
	}
	waitClusters(t, 10*time.Second, fca, "absent=SecretNotFound,green=Ready,nowhere=ClusterUnreachable,teal=Ready,wrongkey=SecretKeyMissing")
	for _, n := range []string{"green", "teal"} {
		op.Clusters.Release("test/fed-secrets/" + n)
	}
	if err := env.Client.Delete(ctx, fca); err != nil {
		t.Fatal(err)
	}
}

// TestFederatedClusterAccessSameName: objects of the same name in two
// namespaces are named "<namespace>/<name>" while both exist; a name
// discovered once stays the object's name. Two accesses on the same
// objects share one discovery watch but not their connections.
func TestFederatedClusterAccessSameName(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	kc := string(adminKubeconfig(t, env, "fed-twins"))
	for _, ns := range []string{"fed-twin-a", "fed-twin-b"} {
		createNamespace(t, ns)
		create(t, clusterConfigMap(ns, "twin", "twin", map[string]string{"kubeconfig": kc}))
	}
	create(t, clusterConfigMap("fed-twin-a", "solo", "twin", map[string]string{"kubeconfig": kc}))
	fca := federatedAccess("fed-twin-a", "twins", v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: ".data.kubeconfig", LabelSelector: "fed=twin"})
	create(t, fca)
	waitClusters(t, 30*time.Second, fca, "solo=Ready,fed-twin-a/twin=Ready,fed-twin-b/twin=Ready")
	nn := types.NamespacedName{Namespace: "fed-twin-a", Name: "twins"}
	if got := memberNames(nn); !slices.Equal(got, []string{"fed-twin-a/twin", "fed-twin-b/twin", "solo"}) {
		t.Errorf("members %v", got)
	}
	if err := env.Client.Delete(ctx, configMap("fed-twin-b", "twin", nil)); err != nil {
		t.Fatal(err)
	}
	waitClusters(t, 10*time.Second, fca, "solo=Ready,twin=Ready")
	if got := memberNames(nn); !slices.Equal(got, []string{"solo", "twin"}) {
		t.Errorf("members %v", got)
	}
	// A second access on the same objects shares the discovery watch, and
	// has its own connection to each cluster.
	other := federatedAccess("fed-twin-b", "twins", fca.Spec)
	create(t, other)
	waitClusters(t, 30*time.Second, other, "solo=Ready,twin=Ready")
	otherNN := types.NamespacedName{Namespace: "fed-twin-b", Name: "twins"}
	if a, b := op.Federated.Clusters(nn)[1].Key, op.Federated.Clusters(otherNN)[1].Key; a == b ||
		a != controllers.FederatedClusterKey(nn, "fed-twin-a", "twin") {
		t.Errorf("keys %q and %q", a, b)
	}
	watches := 0
	for _, k := range op.Discovery.Active() {
		if k.LabelSelector == "fed=twin" {
			watches++
		}
	}
	if watches != 1 {
		t.Errorf("%d discovery watches for two accesses on the same objects, want 1", watches)
	}
	if err := env.Client.Delete(ctx, fca); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, other); err != nil {
		t.Fatal(err)
	}
}
