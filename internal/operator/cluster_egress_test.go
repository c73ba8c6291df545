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

// TestClusterOutsideAllowedEndpointsIsNeverContacted runs the operator
// binary with --cluster-allowed-endpoints=127.0.0.1/32 (the test control
// plane's address). A RemoteClusterAccess and a cluster a
// FederatedClusterAccess discovers, whose kubeconfigs name a real TCP
// listener at 127.0.0.2, are refused with EndpointNotAllowed (the Metric
// reading through the access too) and the listener sees no connection,
// over several re-checks; the same kinds of access to the control plane
// are Ready and a Metric through it counts the remote objects.
func TestClusterOutsideAllowedEndpointsIsNeverContacted(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "cluster-egress"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	forbidden := listenCountingOn(t, "127.0.0.2:0")

	allowed, refused := adminKubeconfig(t, "cluster-egress"), forbidden.kubeconfig()
	for name, kc := range map[string][]byte{"allowed": allowed, "refused": refused} {
		mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Data: map[string][]byte{v1alpha1.DefaultKubeConfigKey: kc}})
		// The FederatedClusterAccess discovers one cluster per ConfigMap
		// naming a Secret.
		mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Data: map[string]string{"name": name}})
		rca := &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.RemoteClusterAccessSpec{KubeConfigSecretRef: &v1alpha1.KubeConfigSecretReference{Name: name}}}
		mustCreate(t, rca)
		m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "through-" + name, Namespace: ns},
			Spec: v1alpha1.MetricSpec{Name: "cluster_egress_" + name, Target: configMaps, Namespace: ns,
				EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: 10 * time.Second},
				RemoteClusterAccessRef: &v1alpha1.NamespacedReference{Name: name}}}
		mustCreate(t, m)
		// Other tests' operators (without the flag) must not connect to it.
		t.Cleanup(func() {
			_ = env.Client.Delete(context.Background(), m)
			_ = env.Client.Delete(context.Background(), rca)
		})
	}
	fca := &v1alpha1.FederatedClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		Spec: v1alpha1.FederatedClusterAccessSpec{Target: configMaps, Namespace: ns, SecretRefPath: "data"}}
	mustCreate(t, fca)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), fca) })

	p := startProcess(t, ns, "--cluster-allowed-endpoints=127.0.0.1/32", "--datasink-recheck-interval=1s")

	for name, want := range map[string]string{"allowed": v1alpha1.ReasonReady, "refused": v1alpha1.ReasonEndpointNotAllowed} {
		rca := &v1alpha1.RemoteClusterAccess{}
		testenv.Eventually(t, 60*time.Second, func() error {
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rca); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(rca.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Reason != want {
				return fmt.Errorf("RemoteClusterAccess %s: Ready %+v, want %s", name, c, want)
			}
			return nil
		})
		c := meta.FindStatusCondition(rca.Status.Conditions, v1alpha1.ConditionReady)
		t.Logf("RemoteClusterAccess %s: %s: %s", name, c.Reason, c.Message)
		if name == "refused" && (strings.Contains(c.Message, "127.0.0.2") || !strings.Contains(c.Message, "--cluster-allowed-endpoints")) {
			t.Errorf("message %q names the address, or not the flag", c.Message)
		}
		waitMetricReason(t, ns, "through-"+name, want, 60*time.Second)
	}
	// Both ConfigMaps (the remote cluster is the control plane itself).
	waitFamily(t, p.metricsURL, "cluster_egress_allowed", "{cluster=allowed,kind=ConfigMap,version=v1} 2")

	testenv.Eventually(t, 60*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(fca), fca); err != nil {
			return err
		}
		var got []string
		for _, d := range fca.Status.Clusters {
			got = append(got, d.Name+"="+map[bool]string{true: "Ready", false: d.Reason}[d.Ready])
		}
		if want := "allowed=Ready,refused=" + v1alpha1.ReasonEndpointNotAllowed; strings.Join(got, ",") != want {
			return fmt.Errorf("FederatedClusterAccess clusters %v, want %s", got, want)
		}
		return nil
	})
	for _, d := range fca.Status.Clusters {
		t.Logf("FederatedClusterAccess cluster %s: %s %s", d.Name, d.Reason, d.Message)
	}

	// Several re-checks (every second) later, still nothing reached it.
	time.Sleep(3 * time.Second)
	if n := forbidden.accepted.Load(); n != 0 {
		t.Fatalf("the listener outside the allowed endpoints saw %d connections", n)
	}
	t.Log("listener outside the allowed endpoints: 0 connections")
}
