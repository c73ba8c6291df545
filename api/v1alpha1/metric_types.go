package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MetricSpec says which objects to count or measure and how to group them.
type MetricSpec struct {
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
	// target is the kind of objects to count, for example
	// {group: "", version: "v1", kind: "Pod"} or
	// {group: "apps", version: "v1", kind: "Deployment"}.
	// +required
	Target GroupVersionKind `json:"target"`
	// namespace limits the metric to objects in this namespace (namespaced
	// targets only). Empty: all namespaces.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// serviceAccountName is the ServiceAccount, in this metric's namespace,
	// whose access the metric reads with: the operator reads the target only
	// while this ServiceAccount may list and watch it in the metric's
	// namespace scope (all namespaces when no namespace is set). Omitted:
	// the operator's --default-service-account; when that is empty too, the
	// operator's own access applies.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// labelSelector keeps only objects whose labels match, in Kubernetes
	// selector syntax: "app=web,tier!=db", "env in (prod,stage)", "!legacy".
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	LabelSelector string `json:"labelSelector,omitempty"`
	// fieldSelector keeps only objects whose fields match, in Kubernetes
	// field selector syntax: "metadata.name=foo", "status.phase!=Running".
	// Any field path of the object may be used (it is evaluated by the
	// operator, not the API server).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	FieldSelector string `json:"fieldSelector,omitempty"`
	// interval is, in polling mode, how often the objects are read and the
	// metric exported; in event-driven mode, the longest time between two
	// exports of an unchanged metric (a heartbeat). At least 10s.
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
	// eventDriven, when true, keeps the metric current from watch events
	// (within a fraction of a second of a change) instead of reading all
	// objects every interval. The annotation
	// metrics.cloud.sap/event-driven: "true" has the same effect. When
	// neither is set the operator's --event-driven-default flag decides.
	// +optional
	EventDriven *bool `json:"eventDriven,omitempty"`
	// projections add dimensions: objects with equal values of all
	// projections form one series.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Projections []Projection `json:"projections,omitempty"`
	// valueFrom makes each series' value come from a field of its objects
	// (aggregated) instead of the number of objects.
	// +optional
	ValueFrom *ValueFrom `json:"valueFrom,omitempty"`
	// dataSinkRef names the DataSink, in this namespace, the metric is
	// pushed to over OTLP. Omitted: the DataSink named "default" in the
	// operator's namespace if it exists; otherwise the metric is only
	// served on the operator's /metrics endpoint.
	// +optional
	DataSinkRef *DataSinkReference `json:"dataSinkRef,omitempty"`
	// remoteClusterAccessRef reads the objects from the cluster that this
	// RemoteClusterAccess describes instead of the local cluster.
	// +optional
	RemoteClusterAccessRef *NamespacedReference `json:"remoteClusterAccessRef,omitempty"`
}

// Observation is the latest result of a metric.
type Observation struct {
	// timestamp of the observation.
	// +optional
	Timestamp metav1.Time `json:"timestamp,omitempty"`
	// latestValue is the total over all series: the number of matching
	// objects, or the sum of the series' values with valueFrom.
	// +optional
	LatestValue string `json:"latestValue,omitempty"`
	// dimensions of the series when there is exactly one; the names of the
	// dimensions otherwise.
	// +optional
	Dimensions []Dimension `json:"dimensions,omitempty"`
	// series is the number of series exported.
	// +optional
	Series int32 `json:"series,omitempty"`
}

// UpdateMode tells how a metric is kept current.
// +kubebuilder:validation:Enum=EventDriven;Polling
type UpdateMode string

const (
	// ModeEventDriven keeps the metric current from watch events.
	ModeEventDriven UpdateMode = "EventDriven"
	// ModePolling reads all objects every interval.
	ModePolling UpdateMode = "Polling"
)

// MetricStatus is the observed state of a Metric.
type MetricStatus struct {
	CommonStatus `json:",inline"`
	// observation is the latest result.
	// +optional
	Observation Observation `json:"observation,omitempty"`
	// ready is "True" when the metric is exported as specified, kept for
	// compatibility; the Ready condition says more.
	// +optional
	Ready string `json:"ready,omitempty"`
	// mode the metric is kept current in: EventDriven or Polling.
	// +optional
	Mode UpdateMode `json:"mode,omitempty"`
}

// Metric counts or measures Kubernetes objects of one kind, grouped by
// projections, and exports the result to Prometheus and over OTLP.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metrics,shortName=mt
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Value",type=string,JSONPath=`.status.observation.latestValue`
// +kubebuilder:printcolumn:name="Observed",type=date,JSONPath=`.status.observation.timestamp`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.mode`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Metric struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says what to count and how to group it.
	// +required
	Spec MetricSpec `json:"spec"`
	// status is the latest observation and the Ready condition.
	// +optional
	Status MetricStatus `json:"status,omitempty"`
}

// MetricList is a list of Metrics.
// +kubebuilder:object:root=true
type MetricList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Metric `json:"items"`
}

func init() {
	register(&Metric{}, &MetricList{})
}
