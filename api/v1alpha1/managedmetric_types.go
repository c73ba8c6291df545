package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ManagedMetricSpec says which Crossplane managed resources to count and how
// to group them.
type ManagedMetricSpec struct {
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
	// target limits the metric to some managed resource kinds. Every part
	// is optional: {group: "s3.aws.upbound.io"} counts every managed kind of
	// that group, {group: "s3.aws.upbound.io", kind: "Bucket"} one kind, and
	// a version reads the kinds in that version. Omitted: every managed
	// resource kind the cluster serves, that is every CRD with both
	// categories "crossplane" and "managed", including kinds whose CRDs are
	// installed after the metric was created. Each resource is counted once,
	// in one version of its kind: the given version, else the CRD's
	// preferred one.
	// +optional
	Target *ManagedTarget `json:"target,omitempty"`
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
	// interval is, in polling mode, how often the resources are read and the
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
	// resources every interval. The annotation
	// metrics.cloud.sap/event-driven: "true" has the same effect. When
	// neither is set the operator's --event-driven-default flag decides.
	// +optional
	EventDriven *bool `json:"eventDriven,omitempty"`
	// dimensions group the resources: resources with equal values of all
	// dimensions form one series, whose value is their number. Omitted: the
	// dimensions group, version, kind and cluster plus "ready" and "synced",
	// the statuses ("True", "False", "Unknown") of the resources' Ready and
	// Synced conditions ("Unknown" also when a resource has no such
	// condition). Given: "cluster" plus exactly these dimensions, so
	// resources of different kinds with equal values form one series; the
	// names group, version, kind and cluster are reserved.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Dimensions []Projection `json:"dimensions,omitempty"`
	// dataSinkRef names the DataSink, in this namespace, the metric is
	// pushed to over OTLP. Omitted: the DataSink named "default" in the
	// operator's namespace if it exists; otherwise the metric is only
	// served on the operator's /metrics endpoint.
	// +optional
	DataSinkRef *DataSinkReference `json:"dataSinkRef,omitempty"`
	// remoteClusterAccessRef reads the resources from the cluster that this
	// RemoteClusterAccess describes instead of the local cluster.
	// +optional
	RemoteClusterAccessRef *NamespacedReference `json:"remoteClusterAccessRef,omitempty"`
}

// ManagedTarget selects managed resource kinds; every part is optional.
type ManagedTarget struct {
	// group of the managed kinds, for example "s3.aws.upbound.io".
	// Empty: every group.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`
	// version to read the kinds in, for example "v1beta1"; kinds that do not
	// serve it are left out. Empty: each kind's preferred version.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Version string `json:"version,omitempty"`
	// kind of the managed resources, matched as kubectl matches it: the kind
	// ("Bucket"), its plural, singular or a short name, in any case.
	// Empty: every kind.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind,omitempty"`
}

// ManagedObservation is the latest result of a ManagedMetric.
type ManagedObservation struct {
	// timestamp of the observation.
	// +optional
	Timestamp metav1.Time `json:"timestamp,omitempty"`
	// resources is the number of matching managed resources, over all
	// series and kinds.
	// +optional
	Resources int64 `json:"resources"`
	// series is the number of series exported.
	// +optional
	Series int32 `json:"series,omitempty"`
}

// ManagedMetricStatus is the observed state of a ManagedMetric.
type ManagedMetricStatus struct {
	CommonStatus `json:",inline"`
	// observation is the latest result.
	// +optional
	Observation ManagedObservation `json:"observation,omitempty"`
	// ready is "True" when the metric is exported as specified, kept for
	// compatibility; the Ready condition says more.
	// +optional
	Ready string `json:"ready,omitempty"`
	// mode the metric is kept current in: EventDriven or Polling.
	// +optional
	Mode UpdateMode `json:"mode,omitempty"`
}

// ManagedMetric counts Crossplane managed resources (the kinds whose CRDs
// carry the categories "crossplane" and "managed"), grouped by their Ready
// and Synced conditions or by the given dimensions, and exports the result
// to Prometheus and over OTLP.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metrics,shortName=mmt
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Value",type=integer,JSONPath=`.status.observation.resources`
// +kubebuilder:printcolumn:name="Observed",type=date,JSONPath=`.status.observation.timestamp`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.mode`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ManagedMetric struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which managed resources to count and how to group them.
	// +required
	Spec ManagedMetricSpec `json:"spec"`
	// status is the latest observation and the Ready condition.
	// +optional
	Status ManagedMetricStatus `json:"status,omitempty"`
}

// ManagedMetricList is a list of ManagedMetrics.
// +kubebuilder:object:root=true
type ManagedMetricList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ManagedMetric `json:"items"`
}

func init() {
	register(&ManagedMetric{}, &ManagedMetricList{})
}
