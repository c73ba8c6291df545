package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
)

// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// accessRequest is what a Metric reads, for the access checker: its target
// resource in namespace, the metric's namespace scope ("" for all).
func accessRequest(m *v1alpha1.Metric, gvr schema.GroupVersionResource, namespace string) access.Request {
	return access.Request{
		Kind:               metricKind,
		Metric:             types.NamespacedName{Namespace: m.Namespace, Name: m.Name},
		ServiceAccountName: m.Spec.ServiceAccountName,
		Resource:           gvr.GroupResource(),
		Namespace:          namespace,
	}
}

// scopeNamespace is the namespace a metric reads mapping's resource in:
// spec.namespace for namespaced kinds, "" (cluster-wide) otherwise.
func scopeNamespace(mapping *meta.RESTMapping, namespace string) string {
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return namespace
	}
	return ""
}
