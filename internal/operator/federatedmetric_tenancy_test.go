package operator_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestFederatedMetricTenancy runs the operator with
// --default-service-account and --no-cross-namespace-refs: a
// FederatedMetric naming another namespace's FederatedClusterAccess is
// refused with CrossNamespaceReference and reads nothing, while one using
// its own namespace's access reads that access's clusters.
func TestFederatedMetricTenancy(t *testing.T) {
	testenv.Require(t, env)
	tenant, other := "fmten-a", "fmten-other"
	for _, ns := range []string{tenant, other} {
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "metrics", Namespace: tenant}})
	bindReader(t, tenant, "fmten-readers", "metrics", tenant)
	path, err := env.WriteAdminKubeconfig(t.TempDir(), "fmten")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	for _, ns := range []string{tenant, other} {
		objs = append(objs,
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plane", Namespace: ns, Labels: map[string]string{"plane": "yes"}},
				Data: map[string]string{"kubeconfig": string(kc)}},
			&v1alpha1.FederatedClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: "planes", Namespace: ns},
				Spec: v1alpha1.FederatedClusterAccessSpec{Target: configMaps, Namespace: ns, LabelSelector: "plane=yes", KubeConfigPath: "data.kubeconfig"}})
	}
	metric := func(name, accessNamespace string) *v1alpha1.FederatedMetric {
		return &v1alpha1.FederatedMetric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tenant},
			Spec: v1alpha1.FederatedMetricSpec{Target: configMaps, LabelSelector: "plane=yes", EventDriven: ptr.To(true),
				Interval:                 metav1.Duration{Duration: time.Minute},
				FederateClusterAccessRef: v1alpha1.NamespacedReference{Name: "planes", Namespace: accessNamespace}}}
	}
	foreign, own := metric("foreign", other), metric("own", "")
	objs = append(objs, foreign, own)
	run(t, env.Config, operator.Options{MetricsAddr: "0", ProbeAddr: "0", Namespace: tenant,
		DefaultServiceAccount: "metrics", NoCrossNamespaceRefs: true, AccessRecheckPeriod: recheck,
		DataSinkRecheckInterval: time.Second, StatusInterval: time.Second})
	for _, o := range objs {
		mustCreate(t, o)
		// The accesses go while the operator runs, so no connection outlives it.
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}

	wait := func(fm *v1alpha1.FederatedMetric, reason string, active int32) {
		t.Helper()
		testenv.Eventually(t, 60*time.Second, func() error {
			if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(fm), fm); err != nil {
				return err
			}
			c := meta.FindStatusCondition(fm.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Reason != reason || fm.Status.Observation.ActiveCount != active {
				return fmt.Errorf("%s: Ready %+v, %d active clusters; want %s, %d", fm.Name, c, fm.Status.Observation.ActiveCount, reason, active)
			}
			return nil
		})
	}
	wait(foreign, v1alpha1.ReasonCrossNamespaceReference, 0)
	wait(own, v1alpha1.ReasonReady, 1)
}
