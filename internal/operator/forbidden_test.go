package operator_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestForbiddenTargetIsReportedAndIsolated runs the operator as a user
// whose RBAC leaves out Deployments: a Metric on Deployments reports
// Forbidden in either mode, and a Metric beside it is unaffected.
func TestForbiddenTargetIsReportedAndIsolated(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "forbidden"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "visible", Namespace: ns}})
	grant(t, "limited-operator", rbacv1.Subject{Kind: "User", Name: "limited-operator", APIGroup: "rbac.authorization.k8s.io"},
		rbacv1.PolicyRule{APIGroups: []string{"metrics.cloud.sap"}, Resources: []string{"*"}, Verbs: []string{"*"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}})
	user, err := env.AddUser(envtest.User{Name: "limited-operator"})
	if err != nil {
		t.Fatal(err)
	}

	deployments := v1alpha1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	metrics := []*v1alpha1.Metric{
		{ObjectMeta: metav1.ObjectMeta{Name: "deployments-polling", Namespace: ns},
			Spec: v1alpha1.MetricSpec{Target: deployments, Interval: metav1.Duration{Duration: 10 * time.Second}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "deployments-events", Namespace: ns},
			Spec: v1alpha1.MetricSpec{Target: deployments, EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "configmaps", Namespace: ns},
			Spec: v1alpha1.MetricSpec{Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns,
				EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}},
	}
	for _, m := range metrics {
		mustCreate(t, m)
	}
	// A ManagedMetric needs the CRDs to find the managed kinds.
	managed := &v1alpha1.ManagedMetric{ObjectMeta: metav1.ObjectMeta{Name: "managed", Namespace: ns},
		Spec: v1alpha1.ManagedMetricSpec{EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}}
	mustCreate(t, managed)

	run(t, user.Config(), operator.Options{MetricsAddr: "0", ProbeAddr: "0", Namespace: ns, MinExportInterval: time.Second})

	want := map[string]string{
		"deployments-polling": v1alpha1.ReasonForbidden,
		"deployments-events":  v1alpha1.ReasonForbidden,
		"configmaps":          v1alpha1.ReasonReady,
	}
	for name, reason := range want {
		testenv.Eventually(t, 60*time.Second, func() error {
			m := &v1alpha1.Metric{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
				return err
			}
			c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Reason != reason {
				return fmt.Errorf("%s: Ready condition %+v, want reason %s", name, c, reason)
			}
			t.Logf("%s: %s: %s", name, c.Reason, c.Message)
			return nil
		})
	}
	testenv.Eventually(t, 60*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(managed), managed); err != nil {
			return err
		}
		c := meta.FindStatusCondition(managed.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Reason != v1alpha1.ReasonForbidden || !strings.Contains(c.Message, "customresourcedefinitions.apiextensions.k8s.io") {
			return fmt.Errorf("ManagedMetric: Ready condition %+v, want Forbidden naming the CRDs", c)
		}
		t.Logf("ManagedMetric: %s: %s", c.Reason, c.Message)
		return nil
	})
}
