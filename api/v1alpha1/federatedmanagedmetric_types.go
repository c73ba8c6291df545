package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FederatedManagedMetricSpec says which Crossplane managed resources to count
// on every cluster a FederatedClusterAccess discovers.
type FederatedManagedMetricSpec struct {
	// name of the exported metric: the OTLP metric name as written, and the
	// Prometheus family name after invalid characters are replaced by "_".
	// Defaults to metadata.name.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	Name string `json:"name,omitempty"`
	// description of the metric: the OTLP description and the Prometheus
	// HELP text.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`
	// labelSelector keeps only resources whose labels match, in Kubernetes
	// selector syntax: "app=web,tier!=db", "env in (prod,stage)", "!legacy".
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	LabelSelector string `json:"labelSelector,omitempty"`
	// fieldSelector keeps only resources whose fields match, in Kubernetes
	// field selector syntax: "metadata.name=foo",
	// "spec.providerConfigRef.name=default". Any field path of the object
	// may be used (it is evaluated by the operator, not the API server).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	FieldSelector string `json:"fieldSelector,omitempty"`
	// serviceAccountName is the ServiceAccount, in this metric's namespace,
	// whose access the metric reads with: the operator reads objects of the
	// local cluster for this metric only while this ServiceAccount may list
	// and watch them in the scope the metric reads. Omitted: the operator's
	// --default-service-account; when that is empty too, the operator's own
	// access applies.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// interval is, in polling mode, how often the resources are read on
	// every cluster and the metric exported; in event-driven mode, the
	// longest time between two exports of an unchanged metric (a
	// heartbeat). At least 10s.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="interval must be at least 10s"
	Interval metav1.Duration `json:"interval,omitempty"`
	// maxSeries lowers, for this metric, the operator's limit on the
	// number of series of one metric (--max-series-per-metric, 10,000 by
	// default); it cannot raise it. A metric with more series exports
	// nothing and reports SeriesLimitExceeded until it has fewer.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxSeries *int32 `json:"maxSeries,omitempty"`
	// dataSinkRef names the DataSink, in this namespace, the metric is
	// pushed to over OTLP. Omitted: the DataSink named "default" in the
	// operator's namespace if it exists; otherwise the metric is only
	// served on the operator's /metrics endpoint.
	// +optional
	DataSinkRef *DataSinkReference `json:"dataSinkRef,omitempty"`
	// eventDriven, when true, keeps the metric current from watch events on
	// every cluster (within a fraction of a second of a change) instead of
	// reading all resources every interval. The annotation
	// metrics.cloud.sap/event-driven: "true" has the same effect. When
	// neither is set the operator's --event-driven-default flag decides.
	// +optional
	EventDriven *bool `json:"eventDriven,omitempty"`
	// federateClusterAccessRef names the FederatedClusterAccess that
	// discovers the clusters to read. Namespace empty: this metric's
	// namespace.
	// +required
	FederateClusterAccessRef NamespacedReference `json:"federateClusterAccessRef"`
}

// FederatedManagedObservation is the latest result of a
// FederatedManagedMetric.
type FederatedManagedObservation struct {
	FederatedObservation `json:",inline"`
	// resources is the number of matching managed resources over all
	// series and the clusters read successfully.
	// +optional
	Resources int64 `json:"resources"`
}

// FederatedManagedMetricStatus is the observed state of a
// FederatedManagedMetric.
type FederatedManagedMetricStatus struct {
	CommonStatus `json:",inline"`
	// observation counts the clusters read successfully, failed and
	// pending, and the resources counted on them.
	// +optional
	Observation FederatedManagedObservation `json:"observation,omitempty"`
	// ready is "True" when the metric is exported as specified, kept for
	// compatibility; the Ready condition says more.
	// +optional
	Ready string `json:"ready,omitempty"`
	// lastReconcileTime is when the operator last evaluated the metric over
	// all discovered clusters.
	// +optional
	LastReconcileTime *metav1.Time `json:"lastReconcileTime,omitempty"`
	// mode the metric is kept current in: EventDriven or Polling.
	// +optional
	Mode UpdateMode `json:"mode,omitempty"`
}

// FederatedManagedMetric counts Crossplane managed resources (the kinds whose
// CRDs carry the categories "crossplane" and "managed") on every cluster a
// FederatedClusterAccess discovers. Each series carries the dimensions group,
// version, kind, cluster, ready and synced (the statuses of the resources'
// Ready and Synced conditions); its value is its number of resources.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metrics,shortName=fmmt
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Value",type=integer,JSONPath=`.status.observation.resources`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.observation.activeCount`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.observation.failedCount`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.observation.pendingCount`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.mode`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FederatedManagedMetric struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which managed resources to count on every cluster.
	// +required
	Spec FederatedManagedMetricSpec `json:"spec"`
	// status counts the clusters read and holds the Ready condition.
	// +optional
	Status FederatedManagedMetricStatus `json:"status,omitempty"`
}

// FederatedManagedMetricList is a list of FederatedManagedMetrics.
// +kubebuilder:object:root=true
type FederatedManagedMetricList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FederatedManagedMetric `json:"items"`
}

func init() {
	register(&FederatedManagedMetric{}, &FederatedManagedMetricList{})
}
