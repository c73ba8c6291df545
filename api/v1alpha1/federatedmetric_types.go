package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FederatedMetricSpec says which objects to count or measure on every cluster
// a FederatedClusterAccess discovers, and how to group them.
type FederatedMetricSpec struct {
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
	// target is the kind of objects to count on each cluster, for example
	// {group: "", version: "v1", kind: "Pod"} or
	// {group: "apps", version: "v1", kind: "Deployment"}. A cluster that
	// does not serve the kind is counted as failed; the others are still
	// read.
	// +required
	Target GroupVersionKind `json:"target"`
	// labelSelector keeps only objects whose labels match, in Kubernetes
	// selector syntax: "app=web,tier!=db", "env in (prod,stage)", "!legacy".
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	LabelSelector string `json:"labelSelector,omitempty"`
	// fieldSelector keeps only objects whose fields match, in Kubernetes
	// field selector syntax: "metadata.namespace=prod",
	// "status.phase!=Running". Any field path of the object may be used (it
	// is evaluated by the operator, not the API server).
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
	// projections add dimensions: objects with equal values of all
	// projections form one series. Every series also carries the
	// dimension "cluster", the name of the cluster it was read from.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Projections []Projection `json:"projections,omitempty"`
	// valueFrom makes each series' value come from a field of its objects
	// (aggregated) instead of the number of objects.
	// +optional
	ValueFrom *ValueFrom `json:"valueFrom,omitempty"`
	// interval is, in polling mode, how often the objects are read on every
	// cluster and the metric exported; in event-driven mode, the longest
	// time between two exports of an unchanged metric (a heartbeat). At
	// least 10s.
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
	// reading all objects every interval. The annotation
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

// FederatedObservation counts the clusters a federated metric reads.
type FederatedObservation struct {
	// activeCount is the number of clusters read successfully.
	// +optional
	ActiveCount int32 `json:"activeCount"`
	// failedCount is the number of clusters that could not be read
	// (unreachable, forbidden, kind not served); the conditions say why.
	// Their series are left out; the other clusters are still exported.
	// +optional
	FailedCount int32 `json:"failedCount"`
	// pendingCount is the number of discovered clusters not read yet.
	// +optional
	PendingCount int32 `json:"pendingCount"`
}

// FederatedMetricStatus is the observed state of a FederatedMetric or a
// FederatedManagedMetric.
type FederatedMetricStatus struct {
	CommonStatus `json:",inline"`
	// observation counts the clusters read successfully, failed and pending.
	// +optional
	Observation FederatedObservation `json:"observation,omitempty"`
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

// FederatedMetric counts or measures Kubernetes objects of one kind on every
// cluster a FederatedClusterAccess discovers, with a "cluster" dimension
// telling the clusters apart, and exports the result to Prometheus and over
// OTLP.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metrics,shortName=fmt
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.observation.activeCount`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.observation.failedCount`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.observation.pendingCount`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.mode`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FederatedMetric struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says what to count on every cluster and how to group it.
	// +required
	Spec FederatedMetricSpec `json:"spec"`
	// status counts the clusters read and holds the Ready condition.
	// +optional
	Status FederatedMetricStatus `json:"status,omitempty"`
}

// FederatedMetricList is a list of FederatedMetrics.
// +kubebuilder:object:root=true
type FederatedMetricList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FederatedMetric `json:"items"`
}

func init() {
	register(&FederatedMetric{}, &FederatedMetricList{})
}
