package access

import (
	"strings"
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

func TestCheckReferences(t *testing.T) {
	strict := New(Options{NoCrossNamespaceRefs: true})
	lenient := New(Options{})
	rca := func(ns string) *v1alpha1.NamespacedReference {
		return &v1alpha1.NamespacedReference{Name: "x", Namespace: ns}
	}
	for _, tc := range []struct {
		name    string
		checker *Checker
		refs    []Reference
		// field is the field the refusal must name; empty: allowed.
		field string
	}{
		{"no references", strict, MetricReferences(&v1alpha1.MetricSpec{}), ""},
		{"dataSinkRef has no namespace", strict,
			MetricReferences(&v1alpha1.MetricSpec{DataSinkRef: &v1alpha1.DataSinkReference{Name: "sink"}}), ""},
		{"empty namespace is the own one", strict, MetricReferences(&v1alpha1.MetricSpec{RemoteClusterAccessRef: rca("")}), ""},
		{"own namespace written out", strict, MetricReferences(&v1alpha1.MetricSpec{RemoteClusterAccessRef: rca("a")}), ""},
		{"other namespace", strict, MetricReferences(&v1alpha1.MetricSpec{RemoteClusterAccessRef: rca("b")}),
			"spec.remoteClusterAccessRef.namespace"},
		{"other namespace allowed without the flag", lenient,
			MetricReferences(&v1alpha1.MetricSpec{RemoteClusterAccessRef: rca("b")}), ""},
		{"nil checker allows", nil, MetricReferences(&v1alpha1.MetricSpec{RemoteClusterAccessRef: rca("b")}), ""},
		{"managed metric", strict, ManagedMetricReferences(&v1alpha1.ManagedMetricSpec{RemoteClusterAccessRef: rca("b")}),
			"spec.remoteClusterAccessRef.namespace"},
		{"federated metric", strict, FederatedMetricReferences(&v1alpha1.FederatedMetricSpec{
			FederateClusterAccessRef: v1alpha1.NamespacedReference{Name: "x", Namespace: "b"}}),
			"spec.federateClusterAccessRef.namespace"},
		{"federated managed metric in its own namespace", strict, FederatedManagedMetricReferences(&v1alpha1.FederatedManagedMetricSpec{
			FederateClusterAccessRef: v1alpha1.NamespacedReference{Name: "x"}}), ""},
		{"kubeconfig secret", strict, RemoteClusterAccessReferences(&v1alpha1.RemoteClusterAccessSpec{
			KubeConfigSecretRef: &v1alpha1.KubeConfigSecretReference{Name: "kc", Namespace: "b"}}),
			"spec.kubeConfigSecretRef.namespace"},
		{"service account", strict, RemoteClusterAccessReferences(&v1alpha1.RemoteClusterAccessSpec{
			RemoteClusterConfig: &v1alpha1.RemoteClusterConfig{ServiceAccountName: "sa", ServiceAccountNamespace: "b",
				ClusterSecretRef: v1alpha1.NamespacedReference{Name: "cluster"}}}),
			"spec.remoteClusterConfig.serviceAccountNamespace"},
		{"cluster secret", strict, RemoteClusterAccessReferences(&v1alpha1.RemoteClusterAccessSpec{
			RemoteClusterConfig: &v1alpha1.RemoteClusterConfig{ServiceAccountName: "sa",
				ClusterSecretRef: v1alpha1.NamespacedReference{Name: "cluster", Namespace: "b"}}}),
			"spec.remoteClusterConfig.clusterSecretRef.namespace"},
		{"remote cluster config in its own namespace", strict, RemoteClusterAccessReferences(&v1alpha1.RemoteClusterAccessSpec{
			RemoteClusterConfig: &v1alpha1.RemoteClusterConfig{ServiceAccountName: "sa", ServiceAccountNamespace: "a",
				ClusterSecretRef: v1alpha1.NamespacedReference{Name: "cluster"}}}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.checker.CheckReferences("a", tc.refs...)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if got := reason.Of(err, ""); got != v1alpha1.ReasonCrossNamespaceReference {
				t.Fatalf("reason %q (%v), want %s", got, err, v1alpha1.ReasonCrossNamespaceReference)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "--no-cross-namespace-refs") {
				t.Errorf("message %q should name %s and the flag", err, tc.field)
			}
		})
	}
}
