package deploytest

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

const (
	prefixLabel = "metrics.cloud.sap/name-prefix"
	exemptLabel = "metrics.cloud.sap/name-prefix-exempt"
)

// TestChartNamePrefixesKeepTenantsApart installs the chart's name-prefix
// policy (tenancy.namePrefixes.enabled) on the API server for real and
// checks, as tenants would try it, that a namespace may declare only the
// Prometheus names of its own prefix, for every metric kind and on
// create and update: a tenant cannot take the names of another tenant
// whose prefix starts like its own, a namespace without a prefix declares
// nothing, a prefix that could hold another's is refused, and an exempt
// namespace declares any name.
func TestChartNamePrefixesKeepTenantsApart(t *testing.T) {
	testenv.Require(t, env)
	installCRDs(t)
	objs, err := render(t, release{name: "np", namespace: "np-system", values: mustYAML(`{tenancy: {namePrefixes: {enabled: true}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	policies := 0
	for _, u := range objs {
		if !strings.HasPrefix(u.GetKind(), "ValidatingAdmissionPolicy") {
			continue
		}
		policies++
		if err := env.Client.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(u),
			client.FieldOwner("helm"), client.ForceOwnership); err != nil {
			t.Fatalf("applying %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(t.Context(), u) })
	}
	if policies != 2 {
		t.Fatalf("rendered %d policy objects, want the policy and its binding", policies)
	}
	labelled := func(name string, labels map[string]string) string {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if err := env.Client.Create(t.Context(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		return name
	}
	pay := labelled("np-pay", map[string]string{prefixLabel: "pay"})
	payb := labelled("np-payb", map[string]string{prefixLabel: "payb"})
	none := labelled("np-none", nil)
	bad := labelled("np-bad", map[string]string{prefixLabel: "pay_b"})
	platform := labelled("np-platform", map[string]string{exemptLabel: "true"})

	// The API server loads a new policy within about a second; until it
	// has, everything is admitted. A refusal where one is due shows it is
	// in force.
	testenv.Eventually(t, 30*time.Second, func() error {
		err := env.Client.Create(t.Context(), metric("Metric", none, "probe", ""), client.DryRunAll)
		if err == nil {
			return errors.New("the policy is not in force yet")
		}
		return nil
	})

	cases := []struct {
		name, kind, ns, metaName, specName string
		refused                            string // part of the message; "" when admitted
	}{
		{name: "own prefix in spec.name", kind: "Metric", ns: pay, metaName: "a", specName: "pay_requests"},
		{name: "own prefix in metadata.name", kind: "Metric", ns: pay, metaName: "pay-requests-by-team"},
		{name: "another tenant's prefix", kind: "Metric", ns: pay, metaName: "b", specName: "payb_requests",
			refused: "must start with pay_"},
		{name: "a dot or dash after the prefix is the operator's underscore", kind: "Metric", ns: pay, metaName: "c",
			specName: "pay.requests"},
		{name: "no separator after the prefix", kind: "Metric", ns: pay, metaName: "d", specName: "payrequests",
			refused: "must start with pay_"},
		{name: "the other tenant's own names", kind: "Metric", ns: payb, metaName: "a", specName: "payb_requests"},
		{name: "a namespace without a prefix", kind: "Metric", ns: none, metaName: "a", specName: "anything",
			refused: "has no metric name prefix"},
		{name: "a prefix that could hold another's", kind: "Metric", ns: bad, metaName: "a", specName: "pay_b_x",
			refused: "must be letters and digits"},
		{name: "an exempt namespace", kind: "Metric", ns: platform, metaName: "a", specName: "pay_requests"},
		{name: "ManagedMetric", kind: "ManagedMetric", ns: pay, metaName: "e", specName: "payb_managed",
			refused: "must start with pay_"},
		{name: "ManagedMetric with its own prefix", kind: "ManagedMetric", ns: pay, metaName: "f", specName: "pay_managed"},
		{name: "FederatedMetric", kind: "FederatedMetric", ns: pay, metaName: "g", specName: "payb_fed",
			refused: "must start with pay_"},
		{name: "FederatedManagedMetric", kind: "FederatedManagedMetric", ns: pay, metaName: "h", specName: "payb_fedmanaged",
			refused: "must start with pay_"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := env.Client.Create(t.Context(), metric(c.kind, c.ns, c.metaName, c.specName))
			checkAdmission(t, err, c.refused)
		})
	}

	t.Run("an update into another tenant's names", func(t *testing.T) {
		m := &unstructured.Unstructured{}
		m.SetGroupVersionKind(metric("Metric", pay, "a", "").GroupVersionKind())
		if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: pay, Name: "a"}, m); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(m.Object, "payb_requests", "spec", "name"); err != nil {
			t.Fatal(err)
		}
		checkAdmission(t, env.Client.Update(t.Context(), m), "must start with pay_")
	})
}

// checkAdmission fails t unless err is nil where refused is empty, or a
// refusal whose message holds refused.
func checkAdmission(t *testing.T, err error, refused string) {
	t.Helper()
	switch {
	case refused == "":
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
	case err == nil:
		t.Fatalf("admitted, want refused with %q", refused)
	case !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), refused):
		t.Fatalf("got %v, want a refusal saying %q", err, refused)
	default:
		t.Logf("refused: %v", err)
	}
}

// metric is a minimal valid object of a metric kind, named metaName, with
// spec.name specName unless empty.
func metric(kind, ns, metaName, specName string) *unstructured.Unstructured {
	spec := map[string]any{}
	switch kind {
	case "Metric":
		spec["target"] = map[string]any{"version": "v1", "kind": "ConfigMap"}
	case "FederatedMetric":
		spec["target"] = map[string]any{"version": "v1", "kind": "ConfigMap"}
		spec["federateClusterAccessRef"] = map[string]any{"name": "fleet"}
	case "FederatedManagedMetric":
		spec["federateClusterAccessRef"] = map[string]any{"name": "fleet"}
	}
	if specName != "" {
		spec["name"] = specName
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion("metrics.cloud.sap/v1alpha1")
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(metaName)
	return u
}
