package access

import (
	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// Reference is a field of an object that names an object in a namespace.
type Reference struct {
	// Field is the path of the namespace field, for messages, for example
	// "spec.remoteClusterAccessRef.namespace".
	Field string
	// Namespace is what the field says; empty: the referring object's own.
	Namespace string
}

// CheckReferences returns a CrossNamespaceReference error for the first
// reference that names another namespace than namespace, the referring
// object's, when the Checker refuses such references; nil otherwise.
func (c *Checker) CheckReferences(namespace string, refs ...Reference) error {
	if c == nil || !c.opts.NoCrossNamespaceRefs {
		return nil
	}
	for _, r := range refs {
		if r.Namespace != "" && r.Namespace != namespace {
			return reason.New(v1alpha1.ReasonCrossNamespaceReference,
				"%s is %q, but this operator allows references only within the object's own namespace "+
					"(--no-cross-namespace-refs): use an object in namespace %q and leave the field empty",
				r.Field, r.Namespace, namespace)
		}
	}
	return nil
}

// The functions below list the references of each kind that can name
// another namespace. dataSinkRef is not among them: it has no namespace
// field and always names a DataSink of the metric's own namespace, and a
// metric without it uses the operator's "default" DataSink, which is the
// operator's choice rather than a reference and stays allowed.

// MetricReferences returns the references of a Metric.
func MetricReferences(s *v1alpha1.MetricSpec) []Reference {
	return remoteClusterAccessRef(s.RemoteClusterAccessRef)
}

// ManagedMetricReferences returns the references of a ManagedMetric.
func ManagedMetricReferences(s *v1alpha1.ManagedMetricSpec) []Reference {
	return remoteClusterAccessRef(s.RemoteClusterAccessRef)
}

// FederatedMetricReferences returns the references of a FederatedMetric.
func FederatedMetricReferences(s *v1alpha1.FederatedMetricSpec) []Reference {
	return []Reference{{Field: "spec.federateClusterAccessRef.namespace", Namespace: s.FederateClusterAccessRef.Namespace}}
}

// FederatedManagedMetricReferences returns the references of a
// FederatedManagedMetric.
func FederatedManagedMetricReferences(s *v1alpha1.FederatedManagedMetricSpec) []Reference {
	return []Reference{{Field: "spec.federateClusterAccessRef.namespace", Namespace: s.FederateClusterAccessRef.Namespace}}
}

// RemoteClusterAccessReferences returns the Secret and ServiceAccount
// references of a RemoteClusterAccess.
func RemoteClusterAccessReferences(s *v1alpha1.RemoteClusterAccessSpec) []Reference {
	var refs []Reference
	if k := s.KubeConfigSecretRef; k != nil {
		refs = append(refs, Reference{Field: "spec.kubeConfigSecretRef.namespace", Namespace: k.Namespace})
	}
	if r := s.RemoteClusterConfig; r != nil {
		refs = append(refs,
			Reference{Field: "spec.remoteClusterConfig.serviceAccountNamespace", Namespace: r.ServiceAccountNamespace},
			Reference{Field: "spec.remoteClusterConfig.clusterSecretRef.namespace", Namespace: r.ClusterSecretRef.Namespace})
	}
	return refs
}

func remoteClusterAccessRef(r *v1alpha1.NamespacedReference) []Reference {
	if r == nil {
		return nil
	}
	return []Reference{{Field: "spec.remoteClusterAccessRef.namespace", Namespace: r.Namespace}}
}
