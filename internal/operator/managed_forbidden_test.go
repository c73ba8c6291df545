package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

func managedCRD(kind, plural string) string {
	return fmt.Sprintf(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: %[2]s.opmm.test}
spec:
  group: opmm.test
  names: {kind: %[1]s, listKind: %[1]sList, plural: %[2]s, categories: [crossplane, managed]}
  scope: Cluster
  versions:
    - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
`, kind, plural)
}

// TestManagedMetricLeavesOutKindsTheOperatorMayNotRead runs the operator
// as a user that may read one of two managed kinds: in both modes a
// ManagedMetric counts the kind it may read, names the other in its Ready
// message, and counts it too once the operator may read it.
func TestManagedMetricLeavesOutKindsTheOperatorMayNotRead(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "managed-forbidden"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	for _, k := range [][2]string{{"Bucket", "buckets"}, {"Queue", "queues"}} {
		installCRD(t, managedCRD(k[0], k[1]))
		t.Cleanup(func() {
			crd := &unstructured.Unstructured{}
			crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
			crd.SetName(k[1] + ".opmm.test")
			_ = env.Client.Delete(context.Background(), crd)
		})
	}
	for _, o := range []struct{ kind, name string }{{"Bucket", "b1"}, {"Bucket", "b2"}, {"Queue", "q1"}} {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "opmm.test/v1", "kind": o.kind,
			"metadata": map[string]any{"name": o.name}}}
		mustCreate(t, u)
	}
	subject := rbacv1.Subject{Kind: "User", Name: "managed-operator", APIGroup: "rbac.authorization.k8s.io"}
	grant(t, "managed-operator", subject,
		rbacv1.PolicyRule{APIGroups: []string{"metrics.cloud.sap"}, Resources: []string{"*"}, Verbs: []string{"*"}},
		rbacv1.PolicyRule{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{"opmm.test"}, Resources: []string{"buckets"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}})
	user, err := env.AddUser(envtest.User{Name: subject.Name})
	if err != nil {
		t.Fatal(err)
	}
	mms := []*v1alpha1.ManagedMetric{
		{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: ns}, Spec: v1alpha1.ManagedMetricSpec{
			Target: &v1alpha1.ManagedTarget{Group: "opmm.test"}, EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "polling", Namespace: ns}, Spec: v1alpha1.ManagedMetricSpec{
			Target: &v1alpha1.ManagedTarget{Group: "opmm.test"}, EventDriven: ptr.To(false), Interval: metav1.Duration{Duration: 10 * time.Second}}},
	}
	for _, m := range mms {
		mustCreate(t, m)
	}
	run(t, user.Config(), operator.Options{MetricsAddr: "0", ProbeAddr: "0", Namespace: ns,
		MinExportInterval: time.Second, StatusInterval: time.Second})

	wait := func(m *v1alpha1.ManagedMetric, resources int64, message string, timeout time.Duration) {
		t.Helper()
		testenv.Eventually(t, timeout, func() error {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
				return err
			}
			c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
			switch {
			case c == nil || c.Reason != v1alpha1.ReasonReady:
				return fmt.Errorf("%s: Ready condition %+v, want Ready", m.Name, c)
			case m.Status.Observation.Resources != resources:
				return fmt.Errorf("%s: %d resources, want %d", m.Name, m.Status.Observation.Resources, resources)
			case !strings.Contains(c.Message, message):
				return fmt.Errorf("%s: message %q does not say %q", m.Name, c.Message, message)
			}
			t.Logf("%s: %s", m.Name, c.Message)
			return nil
		})
	}
	for _, m := range mms {
		wait(m, 2, "1 managed kinds left out because the operator may not list and watch them", 60*time.Second)
		c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
		for _, want := range []string{"queues.opmm.test", v1alpha1.AggregateToOperatorLabel} {
			if !strings.Contains(c.Message, want) {
				t.Errorf("%s: message %q does not name %q", m.Name, c.Message, want)
			}
		}
	}

	// Once the operator may read queues, they count too (a forbidden watch
	// is retried every 15 s, a polling metric every interval).
	grant(t, "managed-operator-queues", subject,
		rbacv1.PolicyRule{APIGroups: []string{"opmm.test"}, Resources: []string{"queues"}, Verbs: []string{"get", "list", "watch"}})
	for _, m := range mms {
		wait(m, 3, "exporting 2 series", 90*time.Second)
	}
}
