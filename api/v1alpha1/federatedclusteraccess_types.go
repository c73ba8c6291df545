package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReasonClusterLimitExceeded says that more objects match a FederatedClusterAccess's
// target than the operator connects to for one access
// (--max-clusters-per-access); the first ones by namespace and name are
// connected, the others left out.
const ReasonClusterLimitExceeded = "ClusterLimitExceeded"

// FederatedClusterAccessSpec says which local objects stand for clusters and
// where each object keeps its cluster's kubeconfig: set exactly one of
// kubeConfigPath or secretRefPath.
// +kubebuilder:validation:XValidation:rule="has(self.kubeConfigPath) || has(self.secretRefPath)",message="set one of kubeConfigPath (the field holding a kubeconfig) or secretRefPath (the field naming a Secret with the kubeconfig)"
// +kubebuilder:validation:XValidation:rule="!(has(self.kubeConfigPath) && has(self.secretRefPath))",message="kubeConfigPath and secretRefPath are mutually exclusive: set only one"
type FederatedClusterAccessSpec struct {
	// target is the kind of the local objects that each stand for one
	// cluster, for example one object per control plane. The cluster's name
	// (the "cluster" dimension of federated metrics) is the object's name.
	// +required
	Target GroupVersionKind `json:"target"`
	// labelSelector keeps only objects whose labels match, in Kubernetes
	// selector syntax: "app=web,tier!=db", "env in (prod,stage)", "!legacy".
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	LabelSelector string `json:"labelSelector,omitempty"`
	// fieldSelector keeps only objects whose fields match, in Kubernetes
	// field selector syntax: "metadata.name=foo", "status.phase=Ready".
	// Any field path of the object may be used (it is evaluated by the
	// operator, not the API server).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	FieldSelector string `json:"fieldSelector,omitempty"`
	// namespace limits discovery to objects in this namespace (namespaced
	// targets only). Empty: all namespaces.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// kubeConfigPath is the dot-separated path of the field, in each
	// object, that holds the cluster's kubeconfig, either as a string (YAML
	// or JSON) or as an object, for example "status.kubeconfig" or
	// "spec.access.kubeconfig". Field names only: array indexes and names
	// containing dots are not supported. Mutually exclusive with
	// secretRefPath.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`
	KubeConfigPath string `json:"kubeConfigPath,omitempty"`
	// secretRefPath is the dot-separated path of the field, in each object,
	// that names the Secret holding the cluster's kubeconfig, for example
	// "spec.writeConnectionSecretToRef". The field is an object
	// {name, namespace, key}: namespace defaults to the object's namespace,
	// key to "kubeconfig". Field names only: array indexes and names
	// containing dots are not supported. Mutually exclusive with
	// kubeConfigPath.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`
	SecretRefPath string `json:"secretRefPath,omitempty"`
}

// DiscoveredCluster is one cluster a FederatedClusterAccess found.
type DiscoveredCluster struct {
	// name of the cluster: the name of the object it was discovered from.
	Name string `json:"name"`
	// namespace of the object the cluster was discovered from; empty for
	// cluster-scoped objects.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// clusterName is the "cluster" dimension of what is read from the
	// cluster: the object's name, or "<namespace>/<name>" while another
	// discovered object in another namespace has the same name.
	// +optional
	ClusterName string `json:"clusterName,omitempty"`
	// ready is true when the cluster's kubeconfig was found and a client
	// could be built from it.
	Ready bool `json:"ready"`
	// reason the cluster is not ready, for example SecretNotFound,
	// SecretKeyMissing or InvalidKubeConfig.
	// +optional
	Reason string `json:"reason,omitempty"`
	// message says what to fix when the cluster is not ready.
	// +optional
	Message string `json:"message,omitempty"`
}

// FederatedClusterAccessStatus is the observed state of a
// FederatedClusterAccess.
type FederatedClusterAccessStatus struct {
	CommonStatus `json:",inline"`
	// clusterCount is the number of clusters discovered, including those
	// left out over the operator's limit (reason ClusterLimitExceeded).
	// +optional
	ClusterCount int32 `json:"clusterCount"`
	// readyClusterCount is the number of discovered clusters whose
	// kubeconfig resolves.
	// +optional
	ReadyClusterCount int32 `json:"readyClusterCount"`
	// clusters are the discovered clusters the operator connects to,
	// sorted by namespace and name: at most the operator's
	// --max-clusters-per-access, the first ones in that order.
	// +optional
	Clusters []DiscoveredCluster `json:"clusters,omitempty"`
}

// FederatedClusterAccess discovers clusters from objects in the local
// cluster, for example one object per control plane, and says where each
// object keeps its cluster's kubeconfig. FederatedMetrics and
// FederatedManagedMetrics that name it read every cluster it discovers.
// Objects that appear or disappear are picked up without a restart.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metrics,shortName=fca
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.target.kind`
// +kubebuilder:printcolumn:name="Clusters",type=integer,JSONPath=`.status.clusterCount`
// +kubebuilder:printcolumn:name="Ready Clusters",type=integer,JSONPath=`.status.readyClusterCount`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=='Ready')].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=='Ready')].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FederatedClusterAccess struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which objects stand for clusters and where their
	// kubeconfigs are.
	// +required
	Spec FederatedClusterAccessSpec `json:"spec"`
	// status lists the discovered clusters and holds the Ready condition.
	// +optional
	Status FederatedClusterAccessStatus `json:"status,omitempty"`
}

// FederatedClusterAccessList is a list of FederatedClusterAccesses.
// +kubebuilder:object:root=true
type FederatedClusterAccessList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FederatedClusterAccess `json:"items"`
}

func init() {
	register(&FederatedClusterAccess{}, &FederatedClusterAccessList{})
}
