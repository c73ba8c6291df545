package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultKubeConfigKey is the Secret key a kubeconfig is read from when a
// reference names no key.
const DefaultKubeConfigKey = "kubeconfig"

// ReasonInvalidKubeConfig is the Ready reason when a kubeconfig, or the
// cluster secret of a remoteClusterConfig, cannot be parsed or used: it is
// malformed, names no server, or asks for what the operator refuses to do
// for a kubeconfig it did not write (run an exec plugin, read a file).
const ReasonInvalidKubeConfig = "InvalidKubeConfig"

// Other Ready reasons of a RemoteClusterAccess are shared with the metrics:
// ReasonSecretNotFound and ReasonSecretKeyMissing (the Secret or its key is
// missing), ReasonForbidden (the remote API server refuses the credentials,
// or the operator may not request a token for the ServiceAccount),
// ReasonEndpointNotAllowed (the operator's --cluster-allowed-endpoints
// does not admit the API server) and ReasonClusterUnreachable (the remote
// API server does not answer). A Metric that reads through an access
// that is not Ready reports ReasonClusterUnreachable, or
// ReasonEndpointNotAllowed for that reason.

// KubeConfigSecretReference names the Secret key holding a kubeconfig.
type KubeConfigSecretReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// namespace of the Secret. Empty: the RemoteClusterAccess's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// key in the Secret's data whose value is the kubeconfig (YAML or
	// JSON). Its current context is used.
	// +optional
	// +kubebuilder:default=kubeconfig
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// RemoteClusterConfig reaches a remote cluster with short-lived tokens of a
// local ServiceAccount that the remote cluster trusts.
type RemoteClusterConfig struct {
	// serviceAccountName is the ServiceAccount, in the local cluster, the
	// operator requests tokens for (TokenRequest API). The remote cluster
	// must accept tokens of this ServiceAccount for the audience in the
	// cluster secret and grant it read access to the objects the metrics
	// read.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName"`
	// serviceAccountNamespace is the ServiceAccount's namespace. Empty: the
	// RemoteClusterAccess's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	ServiceAccountNamespace string `json:"serviceAccountNamespace,omitempty"`
	// clusterSecretRef names the Secret describing the remote cluster. Its
	// keys: "host", the API server URL (https://api.example.com:443);
	// "audience", the audience the tokens are requested for; "caData", the
	// PEM CA bundle the API server's certificate is verified against.
	// Namespace empty: the RemoteClusterAccess's namespace.
	// +required
	ClusterSecretRef NamespacedReference `json:"clusterSecretRef"`
}

// RemoteClusterAccessSpec says how to reach a remote cluster: set exactly one
// of kubeConfigSecretRef or remoteClusterConfig.
// +kubebuilder:validation:XValidation:rule="has(self.kubeConfigSecretRef) || has(self.remoteClusterConfig)",message="set one of kubeConfigSecretRef (a Secret holding a kubeconfig) or remoteClusterConfig (a ServiceAccount and a cluster secret)"
// +kubebuilder:validation:XValidation:rule="!(has(self.kubeConfigSecretRef) && has(self.remoteClusterConfig))",message="kubeConfigSecretRef and remoteClusterConfig are mutually exclusive: set only one"
type RemoteClusterAccessSpec struct {
	// kubeConfigSecretRef names a Secret key holding a kubeconfig for the
	// remote cluster. Mutually exclusive with remoteClusterConfig.
	// +optional
	KubeConfigSecretRef *KubeConfigSecretReference `json:"kubeConfigSecretRef,omitempty"`
	// remoteClusterConfig reaches the remote cluster with tokens the
	// operator requests for a local ServiceAccount. Tokens are short-lived
	// and renewed before they expire; none is stored. Mutually exclusive
	// with kubeConfigSecretRef.
	// +optional
	RemoteClusterConfig *RemoteClusterConfig `json:"remoteClusterConfig,omitempty"`
	// clusterName is the value of the "cluster" dimension of every series
	// read through this access. Empty: the RemoteClusterAccess's name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClusterName string `json:"clusterName,omitempty"`
}

// ClusterDimension returns the "cluster" dimension of what is read through
// the access.
func (r *RemoteClusterAccess) ClusterDimension() string {
	if r.Spec.ClusterName != "" {
		return r.Spec.ClusterName
	}
	return r.Name
}

// RemoteClusterAccessStatus is the observed state of a RemoteClusterAccess.
type RemoteClusterAccessStatus struct {
	CommonStatus `json:",inline"`
	// server is the remote API server's URL, as found in the kubeconfig or
	// the cluster secret.
	// +optional
	Server string `json:"server,omitempty"`
	// tokenExpirationTime is when the current token expires
	// (remoteClusterConfig only). It is renewed before then.
	// +optional
	TokenExpirationTime *metav1.Time `json:"tokenExpirationTime,omitempty"`
}

// RemoteClusterAccess says how the operator reaches another cluster. A
// Metric or ManagedMetric that names it in remoteClusterAccessRef reads its
// objects from that cluster.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metrics,shortName=rca
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=='Ready')].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=='Ready')].reason`
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.clusterName`,priority=1
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.status.server`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RemoteClusterAccess struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says how to reach the remote cluster.
	// +required
	Spec RemoteClusterAccessSpec `json:"spec"`
	// status says whether the remote cluster can be reached.
	// +optional
	Status RemoteClusterAccessStatus `json:"status,omitempty"`
}

// RemoteClusterAccessList is a list of RemoteClusterAccesses.
// +kubebuilder:object:root=true
type RemoteClusterAccessList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RemoteClusterAccess `json:"items"`
}

func init() {
	register(&RemoteClusterAccess{}, &RemoteClusterAccessList{})
}
