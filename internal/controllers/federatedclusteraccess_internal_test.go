package controllers

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/reason"
)

func TestFederatedClusterName(t *testing.T) {
	tests := []struct {
		namespace, name string
		sameName        int
		want            string
	}{
		{"team-a", "blue", 1, "blue"},
		{"team-a", "blue", 2, "team-a/blue"},
		{"team-b", "blue", 3, "team-b/blue"},
		{"", "blue", 1, "blue"},
		// Cluster-scoped objects cannot share a name; keep it as it is.
		{"", "blue", 2, "blue"},
	}
	for _, tt := range tests {
		if got := clusterName(tt.namespace, tt.name, tt.sameName); got != tt.want {
			t.Errorf("clusterName(%q, %q, %d) = %q, want %q", tt.namespace, tt.name, tt.sameName, got, tt.want)
		}
	}
}

// TestFederatedResolve covers the ways one discovered object's kubeconfig
// is found or refused before any Secret is read: each gives its reason,
// and no message quotes the kubeconfig.
func TestFederatedResolve(t *testing.T) {
	const token = "fca-unit-t0ken-3b9a"
	kc := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "c",
		"contexts": []any{map[string]any{"name": "c", "context": map[string]any{"cluster": "k", "user": "u"}}},
		"clusters": []any{map[string]any{"name": "k", "cluster": map[string]any{"server": "https://api.example.com"}}},
		"users":    []any{map[string]any{"name": "u", "user": map[string]any{"token": token}}},
	}
	execKC := `{"apiVersion":"v1","kind":"Config","current-context":"c",` +
		`"contexts":[{"name":"c","context":{"cluster":"k","user":"u"}}],` +
		`"clusters":[{"name":"k","cluster":{"server":"https://a"}}],` +
		`"users":[{"name":"u","user":{"exec":{"apiVersion":"client.authentication.k8s.io/v1","command":"/bin/sh"}}}]}`
	obj := func(ns string, fields map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: fields}
		u.SetNamespace(ns)
		u.SetName("plane")
		return u
	}
	strict := access.New(access.Options{NoCrossNamespaceRefs: true})
	tests := []struct {
		name       string
		spec       v1alpha1.FederatedClusterAccessSpec
		obj        *unstructured.Unstructured
		checker    *access.Checker
		wantReason string // "" for a definition
		wantServer string
	}{
		{name: "kubeconfig as an object", spec: v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "status.access.kubeconfig"},
			obj: obj("tenant", map[string]any{"status": map[string]any{"access": map[string]any{"kubeconfig": kc}}}), wantServer: "https://api.example.com"},
		{name: "leading dot", spec: v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: ".status.access.kubeconfig"},
			obj: obj("tenant", map[string]any{"status": map[string]any{"access": map[string]any{"kubeconfig": kc}}}), wantServer: "https://api.example.com"},
		{name: "no such field", spec: v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "status.kubeconfig"},
			obj: obj("tenant", map[string]any{}), wantReason: v1alpha1.ReasonInvalidKubeConfig},
		{name: "a number", spec: v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "status.kubeconfig"},
			obj: obj("tenant", map[string]any{"status": map[string]any{"kubeconfig": int64(3)}}), wantReason: v1alpha1.ReasonInvalidKubeConfig},
		{name: "exec refused", spec: v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "status.kubeconfig"},
			obj: obj("tenant", map[string]any{"status": map[string]any{"kubeconfig": execKC}}), wantReason: v1alpha1.ReasonInvalidKubeConfig},
		{name: "secret ref without a name", spec: v1alpha1.FederatedClusterAccessSpec{SecretRefPath: "spec.ref"},
			obj: obj("tenant", map[string]any{"spec": map[string]any{"ref": map[string]any{"key": "k"}}}), wantReason: v1alpha1.ReasonSecretNotFound},
		{name: "cluster-scoped object, Secret without namespace", spec: v1alpha1.FederatedClusterAccessSpec{SecretRefPath: "spec.ref"},
			obj: obj("", map[string]any{"spec": map[string]any{"ref": map[string]any{"name": "kc"}}}), wantReason: v1alpha1.ReasonSecretNotFound},
		{name: "Secret in another namespace, strict", checker: strict, spec: v1alpha1.FederatedClusterAccessSpec{SecretRefPath: "spec.ref"},
			obj:        obj("tenant", map[string]any{"spec": map[string]any{"ref": map[string]any{"name": "kc", "namespace": "kube-system"}}}),
			wantReason: v1alpha1.ReasonCrossNamespaceReference},
		{name: "object in another namespace, strict", checker: strict, spec: v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "status.kubeconfig"},
			obj: obj("other-tenant", map[string]any{"status": map[string]any{"kubeconfig": kc}}), wantReason: v1alpha1.ReasonCrossNamespaceReference},
		{name: "object in own namespace, strict", checker: strict, spec: v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "status.kubeconfig"},
			obj: obj("tenant", map[string]any{"status": map[string]any{"kubeconfig": kc}}), wantServer: "https://api.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &FederatedClusterAccessReconciler{Access: tt.checker}
			fca := &v1alpha1.FederatedClusterAccess{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "planes"}, Spec: tt.spec}
			def, err := r.resolve(t.Context(), fca, tt.obj)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if def.Server() != tt.wantServer || def.Token != token {
					t.Errorf("server %q, token set %v", def.Server(), def.Token == token)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if got := reason.Of(err, ""); got != tt.wantReason {
				t.Errorf("reason %q (%v), want %q", got, err, tt.wantReason)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "/bin/sh") {
				t.Errorf("the message quotes the kubeconfig: %v", err)
			}
		})
	}
}

func TestFederatedDiscoveryError(t *testing.T) {
	gr := schema.GroupResource{Resource: "configmaps"}
	tests := []struct {
		err  error
		want string
	}{
		{apierrors.NewForbidden(gr, "", errors.New("no")), v1alpha1.ReasonForbidden},
		{apierrors.NewNotFound(gr, ""), v1alpha1.ReasonTargetNotFound},
		{errors.New("connection refused"), v1alpha1.ReasonClusterUnreachable},
	}
	for _, tt := range tests {
		if got := reason.Of(discoveryError(tt.err), ""); got != tt.want {
			t.Errorf("discoveryError(%v): %q, want %q", tt.err, got, tt.want)
		}
	}
}
