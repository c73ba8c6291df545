package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestClusterLimitPerAccess runs the operator binary with
// --max-clusters-per-access=2 against a FederatedClusterAccess whose
// target matches five objects, as a tenant's broad selector would: the
// first two by name (kubeconfigs of the test control plane) are
// connected, listed in status and counted by a FederatedMetric; the other
// three (kubeconfigs of a TCP listener) are counted in clusterCount,
// never contacted, and the access reports ClusterLimitExceeded naming the
// flag.
func TestClusterLimitPerAccess(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	const ns = "cluster-limit"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	over := listenCountingOn(t, "127.0.0.2:0")

	plane, elsewhere := adminKubeconfig(t, "cluster-limit"), over.kubeconfig()
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		kc := elsewhere
		if name < "c" {
			kc = plane
		}
		mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Data: map[string][]byte{v1alpha1.DefaultKubeConfigKey: kc}})
		mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{"plane": "yes"}}, Data: map[string]string{"name": name}})
	}
	fca := &v1alpha1.FederatedClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		Spec: v1alpha1.FederatedClusterAccessSpec{Target: configMaps, Namespace: ns, LabelSelector: "plane=yes", SecretRefPath: "data"}}
	fm := &v1alpha1.FederatedMetric{ObjectMeta: metav1.ObjectMeta{Name: "planes", Namespace: ns},
		Spec: v1alpha1.FederatedMetricSpec{Name: "cluster_limit_planes", Target: configMaps, LabelSelector: "plane=yes",
			EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Minute},
			FederateClusterAccessRef: v1alpha1.NamespacedReference{Name: fca.Name}}}
	mustCreate(t, fca)
	mustCreate(t, fm)
	// Other tests' operators run without the limit: they must not reach
	// the listener.
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), fm)
		_ = env.Client.Delete(context.Background(), fca)
	})

	p := startProcess(t, ns, "--max-clusters-per-access=2", "--datasink-recheck-interval=1s")

	testenv.Eventually(t, 60*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(fca), fca); err != nil {
			return err
		}
		var got []string
		for _, d := range fca.Status.Clusters {
			got = append(got, fmt.Sprintf("%s=%t", d.Name, d.Ready))
		}
		c := meta.FindStatusCondition(fca.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Reason != v1alpha1.ReasonClusterLimitExceeded || fca.Status.ClusterCount != 5 ||
			fca.Status.ReadyClusterCount != 2 || strings.Join(got, ",") != "a=true,b=true" {
			return fmt.Errorf("Ready %+v, clusterCount %d, readyClusterCount %d, clusters %v; want ClusterLimitExceeded, 5, 2, a and b ready",
				c, fca.Status.ClusterCount, fca.Status.ReadyClusterCount, got)
		}
		return nil
	})
	c := meta.FindStatusCondition(fca.Status.Conditions, v1alpha1.ConditionReady)
	t.Logf("FederatedClusterAccess: %s: %s", c.Reason, c.Message)
	if !strings.Contains(c.Message, "--max-clusters-per-access") || !strings.Contains(c.Message, "5 objects") {
		t.Errorf("message %q names neither the flag nor the number of objects", c.Message)
	}
	// Each connected cluster is the control plane, with the five ConfigMaps.
	waitFamily(t, p.metricsURL, "cluster_limit_planes",
		"{cluster=a,kind=ConfigMap,version=v1} 5", "{cluster=b,kind=ConfigMap,version=v1} 5")

	// Several re-checks (every second) later, the left-out clusters were
	// still never contacted.
	time.Sleep(3 * time.Second)
	if n := over.accepted.Load(); n != 0 {
		t.Fatalf("the clusters over the limit saw %d connections", n)
	}
	t.Log("clusters over the limit: 0 connections")
}
