package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReasonEndpointNotAllowed is the Ready reason of a DataSink whose endpoint
// the operator's --datasink-allowed-endpoints does not admit (nothing is
// sent to it), and of a RemoteClusterAccess, or a cluster in a
// FederatedClusterAccess's status.clusters, whose API server
// --cluster-allowed-endpoints does not admit (nothing connects to it).
// The metrics that push to such a DataSink or read such a cluster report
// it too.
const ReasonEndpointNotAllowed = "EndpointNotAllowed"

// SecretKeySelector names one key of a Secret in the DataSink's namespace.
type SecretKeySelector struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key in the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// Connection is where the OTLP data goes.
type Connection struct {
	// endpoint of the OTLP receiver. The scheme picks the protocol:
	// "http" and "https" send OTLP/HTTP, and the URL is the full address
	// the data is POSTed to, path included, as your backend documents it
	// (https://abc123.live.dynatrace.com/api/v2/otlp/v1/metrics,
	// http://collector:4318/v1/metrics); "grpc" and "grpcs" send OTLP/gRPC
	// to host:port. "https" and "grpcs" use TLS.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^(https?|grpcs?)://[^/?#]+')",message="endpoint must be a URL with scheme http, https, grpc or grpcs and a host, for example https://collector:4318/v1/metrics or grpc://collector:4317"
	Endpoint string `json:"endpoint"`
}

// APIKeyAuthentication sends an API token with every export.
type APIKeyAuthentication struct {
	// secretKeyRef names the Secret key holding the token. It is sent as
	// the header "Authorization: Api-Token <token>".
	// +required
	SecretKeyRef SecretKeySelector `json:"secretKeyRef"`
}

// CertificateAuthentication authenticates with a client certificate (mTLS).
type CertificateAuthentication struct {
	// clientCertSecretKeyRef names the Secret key holding the PEM client
	// certificate.
	// +required
	ClientCertSecretKeyRef SecretKeySelector `json:"clientCertSecretKeyRef"`
	// clientKeySecretKeyRef names the Secret key holding the PEM private
	// key of the client certificate.
	// +required
	ClientKeySecretKeyRef SecretKeySelector `json:"clientKeySecretKeyRef"`
	// caCertSecretKeyRef names the Secret key holding the PEM CA bundle the
	// server's certificate is verified against. Omitted: the system roots.
	// +optional
	CACertSecretKeyRef *SecretKeySelector `json:"caCertSecretKeyRef,omitempty"`
}

// Authentication says how the operator authenticates to the OTLP receiver.
// +kubebuilder:validation:XValidation:rule="has(self.apiKey) != has(self.certificate)",message="set exactly one of apiKey or certificate"
type Authentication struct {
	// apiKey authenticates with an API token header.
	// +optional
	APIKey *APIKeyAuthentication `json:"apiKey,omitempty"`
	// certificate authenticates with a client certificate (mTLS); the
	// endpoint must use https or grpcs.
	// +optional
	Certificate *CertificateAuthentication `json:"certificate,omitempty"`
}

// DataSinkSpec says where metrics are pushed over OTLP.
// +kubebuilder:validation:XValidation:rule="!has(self.authentication) || !has(self.authentication.certificate) || self.connection.endpoint.startsWith('https://') || self.connection.endpoint.startsWith('grpcs://')",message="certificate authentication needs a TLS endpoint (https:// or grpcs://)"
type DataSinkSpec struct {
	// connection is the OTLP endpoint.
	// +required
	Connection Connection `json:"connection"`
	// authentication to the endpoint; omitted: none.
	// +optional
	Authentication *Authentication `json:"authentication,omitempty"`
}

// DataSinkStatus is the observed state of a DataSink.
type DataSinkStatus struct {
	CommonStatus `json:",inline"`
	// protocol the operator sends with: "http" or "grpc".
	// +optional
	Protocol string `json:"protocol,omitempty"`
	// lastExportTime is when metrics were last pushed successfully.
	// +optional
	LastExportTime *metav1.Time `json:"lastExportTime,omitempty"`
}

// DataSink is an OTLP endpoint that metrics are pushed to, with the
// credentials to reach it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metrics,shortName=dsink
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.connection.endpoint`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=='Ready')].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=='Ready')].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DataSink struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the endpoint and its credentials.
	// +required
	Spec DataSinkSpec `json:"spec"`
	// status says whether the configuration resolves and how exports go.
	// +optional
	Status DataSinkStatus `json:"status,omitempty"`
}

// DataSinkList is a list of DataSinks.
// +kubebuilder:object:root=true
type DataSinkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataSink `json:"items"`
}

func init() {
	register(&DataSink{}, &DataSinkList{})
}
