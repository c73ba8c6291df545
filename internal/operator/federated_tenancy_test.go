package operator_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestFederatedClusterAccessTenancy runs the operator with
// --default-service-account and --no-cross-namespace-refs: a
// FederatedClusterAccess discovering objects in another namespace is
// refused; one in its own namespace is Forbidden until its namespace's
// ServiceAccount may list and watch the target, then discovers its
// clusters, refusing for that cluster alone a Secret in another namespace.
func TestFederatedClusterAccessTenancy(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	tenant, other := "fedten-a", "fedten-other"
	for _, ns := range []string{tenant, other} {
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "metrics", Namespace: tenant}})
	path, err := env.WriteAdminKubeconfig(t.TempDir(), "fedten")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{tenant, other} {
		mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kc", Namespace: ns},
			Data: map[string][]byte{v1alpha1.DefaultKubeConfigKey: kc}})
	}
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "own", Namespace: tenant},
		Data: map[string]string{"name": "kc"}})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: tenant},
		Data: map[string]string{"name": "kc", "namespace": other}})
	access := func(name, ns string) *v1alpha1.FederatedClusterAccess {
		fca := &v1alpha1.FederatedClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tenant},
			Spec: v1alpha1.FederatedClusterAccessSpec{Target: configMaps, Namespace: ns, SecretRefPath: "data"}}
		mustCreate(t, fca)
		t.Cleanup(func() { _ = env.Client.Delete(ctx, fca) })
		return fca
	}
	foreign, own := access("foreign", other), access("own", tenant)
	op := run(t, env.Config, operator.Options{MetricsAddr: "0", ProbeAddr: "0", Namespace: tenant,
		DefaultServiceAccount: "metrics", NoCrossNamespaceRefs: true, AccessRecheckPeriod: recheck,
		DataSinkRecheckInterval: time.Second})

	wait := func(fca *v1alpha1.FederatedClusterAccess, reason, clusters string) {
		t.Helper()
		testenv.Eventually(t, 60*time.Second, func() error {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(fca), fca); err != nil {
				return err
			}
			c := meta.FindStatusCondition(fca.Status.Conditions, v1alpha1.ConditionReady)
			var got []string
			for _, d := range fca.Status.Clusters {
				got = append(got, d.Name+"="+map[bool]string{true: "Ready", false: d.Reason}[d.Ready])
			}
			if c == nil || c.Reason != reason || strings.Join(got, ",") != clusters {
				return fmt.Errorf("%s: Ready %+v, clusters %v; want %s, %q", fca.Name, c, got, reason, clusters)
			}
			return nil
		})
	}
	wait(foreign, v1alpha1.ReasonCrossNamespaceReference, "")
	wait(own, v1alpha1.ReasonForbidden, "")
	granted := time.Now()
	bindReader(t, tenant, "fed-readers", "metrics", tenant)
	wait(own, v1alpha1.ReasonCrossNamespaceReference, "elsewhere=CrossNamespaceReference,own=Ready")
	t.Logf("grant -> clusters discovered after %v; access: %s", time.Since(granted).Round(time.Millisecond),
		meta.FindStatusCondition(own.Status.Conditions, v1alpha1.ConditionReady).Message)

	// Deleted while the operator runs: its connections are removed.
	for _, fca := range []*v1alpha1.FederatedClusterAccess{foreign, own} {
		if err := env.Client.Delete(ctx, fca); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if c := op.Federated.Clusters(client.ObjectKeyFromObject(own)); len(c) != 0 {
			return fmt.Errorf("clusters %v remain", c)
		}
		return nil
	})
}
