package v1alpha1_test

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func obj(kind, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "metrics.cloud.sap/v1alpha1",
		"kind":       kind,
		"metadata":   map[string]any{"name": name, "namespace": "default"},
		"spec":       spec,
	}}
	return u
}

var goodTarget = map[string]any{"group": "", "version": "v1", "kind": "ConfigMap"}

// TestAPIServerRejectsInvalidObjects checks that the schema, not the
// operator, turns bad input away, with a message that names the problem.
func TestAPIServerRejectsInvalidObjects(t *testing.T) {
	testenv.Require(t, env)
	cases := []struct {
		name    string
		obj     *unstructured.Unstructured
		message string // a part of the API server's answer
	}{
		{"datasink with ftp endpoint",
			obj("DataSink", "ftp", map[string]any{"connection": map[string]any{"endpoint": "ftp://collector:21/v1/metrics"}}),
			"endpoint must be a URL with scheme http, https, grpc or grpcs"},
		{"datasink with apiKey and certificate",
			obj("DataSink", "both", map[string]any{
				"connection": map[string]any{"endpoint": "https://collector:4318/v1/metrics"},
				"authentication": map[string]any{
					"apiKey": map[string]any{"secretKeyRef": map[string]any{"name": "s", "key": "k"}},
					"certificate": map[string]any{
						"clientCertSecretKeyRef": map[string]any{"name": "s", "key": "crt"},
						"clientKeySecretKeyRef":  map[string]any{"name": "s", "key": "key"},
					},
				}}),
			"set exactly one of apiKey or certificate"},
		{"datasink with certificate on plain http",
			obj("DataSink", "mtls-plain", map[string]any{
				"connection": map[string]any{"endpoint": "http://collector:4318/v1/metrics"},
				"authentication": map[string]any{
					"certificate": map[string]any{
						"clientCertSecretKeyRef": map[string]any{"name": "s", "key": "crt"},
						"clientKeySecretKeyRef":  map[string]any{"name": "s", "key": "key"},
					},
				}}),
			"certificate authentication needs a TLS endpoint"},
		{"federatedclusteraccess with both paths",
			obj("FederatedClusterAccess", "both", map[string]any{
				"target": goodTarget, "kubeConfigPath": "spec.kubeconfig", "secretRefPath": "spec.secretRef"}),
			"kubeConfigPath"},
		{"federatedclusteraccess with neither path",
			obj("FederatedClusterAccess", "neither", map[string]any{"target": goodTarget}),
			"kubeConfigPath"},
		{"remoteclusteraccess with neither access method",
			obj("RemoteClusterAccess", "neither", map[string]any{}),
			"kubeConfigSecretRef"},
		{"metric without target.kind",
			obj("Metric", "nokind", map[string]any{"target": map[string]any{"group": "", "version": "v1"}}),
			"spec.target.kind: Required value"},
		{"metric without target",
			obj("Metric", "notarget", map[string]any{}),
			"spec.target: Required value"},
		{"metric with a 1s interval",
			obj("Metric", "fast", map[string]any{"target": goodTarget, "interval": "1s"}),
			"interval must be at least 10s"},
		{"metric with an unknown projection type",
			obj("Metric", "badtype", map[string]any{"target": goodTarget,
				"projections": []any{map[string]any{"name": "x", "fieldPath": "metadata.name", "type": "list"}}}),
			`Unsupported value: "list"`},
		{"metric with an unknown aggregation",
			obj("Metric", "badagg", map[string]any{"target": goodTarget,
				"valueFrom": map[string]any{"fieldPath": "spec.replicas", "aggregation": "avg"}}),
			`Unsupported value: "avg"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := env.Client.Create(t.Context(), tc.obj)
			if err == nil {
				t.Fatalf("API server accepted %s", tc.name)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("error %q does not say %q", err.Error(), tc.message)
			}
		})
	}
}

// TestAPIServerAppliesDefaults checks the schema defaults users rely on.
func TestAPIServerAppliesDefaults(t *testing.T) {
	testenv.Require(t, env)
	m := obj("Metric", "defaults", map[string]any{"target": goodTarget,
		"projections": []any{map[string]any{"name": "ns", "fieldPath": "metadata.namespace"}},
		"valueFrom":   map[string]any{"fieldPath": "metadata.generation"}})
	if err := env.Client.Create(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	interval, _, _ := unstructured.NestedString(m.Object, "spec", "interval")
	ptype, _, _ := unstructured.NestedSlice(m.Object, "spec", "projections")
	vtype, _, _ := unstructured.NestedString(m.Object, "spec", "valueFrom", "type")
	agg, _, _ := unstructured.NestedString(m.Object, "spec", "valueFrom", "aggregation")
	if interval != "10m0s" && interval != "10m" {
		t.Errorf("interval default = %q, want 10m", interval)
	}
	if got := ptype[0].(map[string]any)["type"]; got != "primitive" {
		t.Errorf("projection type default = %v, want primitive", got)
	}
	if vtype != "integer" || agg != "sum" {
		t.Errorf("valueFrom defaults = %q/%q, want integer/sum", vtype, agg)
	}
}
