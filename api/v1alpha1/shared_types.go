package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersionKind names the kind of Kubernetes object a metric reads.
type GroupVersionKind struct {
	// group of the target kind, for example "apps" or "pkg.crossplane.io".
	// Leave empty for the core API group (Pods, ConfigMaps, Services, ...).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`
	// version of the target kind, for example "v1". The operator resolves
	// group, version and kind to a resource through API discovery.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Version string `json:"version"`
	// kind of the target objects, as in their "kind" field, for example
	// "Pod" or "Deployment" (not the plural resource name).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
}

// GVK returns the target as an apimachinery GroupVersionKind.
func (g GroupVersionKind) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: g.Group, Version: g.Version, Kind: g.Kind}
}

// ProjectionType says how the value found at a projection's fieldPath is
// rendered as a dimension value.
// +kubebuilder:validation:Enum=primitive;map;slice;timestamp
type ProjectionType string

const (
	// ProjectionPrimitive renders a string, number or bool as text.
	ProjectionPrimitive ProjectionType = "primitive"
	// ProjectionMap renders a JSON object as compact JSON.
	ProjectionMap ProjectionType = "map"
	// ProjectionSlice renders a JSON array as compact JSON.
	ProjectionSlice ProjectionType = "slice"
	// ProjectionTimestamp renders an RFC 3339 string as Unix seconds.
	ProjectionTimestamp ProjectionType = "timestamp"
)

// Projection adds one dimension to a metric: objects with the same values
// of all dimensions form one series.
type Projection struct {
	// name of the dimension: the OTLP attribute name, and the Prometheus
	// label name after invalid characters are replaced by "_".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name"`
	// fieldPath is a JSONPath into each target object, with or without
	// braces, for example "metadata.namespace", "metadata.labels.app",
	// "status.conditions[?(@.type=='Ready')].status" or
	// "spec.containers[0].image". The path "." is the whole object.
	// An object where the path is missing or null counts all the same: it
	// gets the default if one is set, otherwise the dimension is left out
	// for that object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	FieldPath string `json:"fieldPath"`
	// type says how the value at fieldPath is rendered: "primitive" (a
	// string, number or bool as text), "map" (a JSON object as compact
	// JSON), "slice" (a JSON array as compact JSON) or "timestamp" (an
	// RFC 3339 string as Unix seconds).
	// +optional
	// +kubebuilder:default=primitive
	Type ProjectionType `json:"type,omitempty"`
	// default is used when the path is missing or null. For "primitive"
	// and "timestamp" give a JSON string ("unknown",
	// "2024-01-01T00:00:00Z"); for "map" and "slice" the JSON object or
	// array itself.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Default *apiextensionsv1.JSON `json:"default,omitempty"`
}

// ValueType says how a valueFrom field is read.
// +kubebuilder:validation:Enum=integer;timestamp
type ValueType string

const (
	// ValueInteger reads a whole number; a number with a fraction is an
	// error for that object.
	ValueInteger ValueType = "integer"
	// ValueTimestamp reads an RFC 3339 string as Unix seconds.
	ValueTimestamp ValueType = "timestamp"
)

// Aggregation says how the values of the objects of one series combine.
// +kubebuilder:validation:Enum=sum;max;min;mean
type Aggregation string

const (
	// AggregationSum adds the values up.
	AggregationSum Aggregation = "sum"
	// AggregationMax takes the largest value.
	AggregationMax Aggregation = "max"
	// AggregationMin takes the smallest value.
	AggregationMin Aggregation = "min"
	// AggregationMean takes the mean, rounded down to an integer.
	AggregationMean Aggregation = "mean"
)

// ValueFrom makes a series' value come from a field of its objects instead
// of their count.
type ValueFrom struct {
	// fieldPath is a JSONPath into each object, as for projections, for
	// example "spec.replicas" or "metadata.creationTimestamp".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	FieldPath string `json:"fieldPath"`
	// type of the field: "integer" (a whole number; a number with a
	// fraction is an error for that object) or "timestamp" (an RFC 3339
	// string, read as Unix seconds).
	// +optional
	// +kubebuilder:default=integer
	Type ValueType `json:"type,omitempty"`
	// aggregation combines the values of the objects of one series:
	// "sum", "max", "min" or "mean" (rounded down to an integer).
	// +optional
	// +kubebuilder:default=sum
	Aggregation Aggregation `json:"aggregation,omitempty"`
	// default is used when the field is missing or null: a whole number
	// for "integer" (as a string, for example "0"), an RFC 3339 time for
	// "timestamp". Without a default such objects are left out of the
	// value (they still do not fail the metric).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Default *string `json:"default,omitempty"`
}

// DataSinkReference names a DataSink in the metric's namespace.
type DataSinkReference struct {
	// name of the DataSink. A metric without dataSinkRef uses the DataSink
	// named "default" in the operator's namespace, if there is one.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// NamespacedReference names an object in a namespace.
type NamespacedReference struct {
	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// namespace of the object. Empty: the namespace of the referring object.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// ReasonCrossNamespaceReference is the Ready reason when a reference names
// an object in another namespace while the operator runs with
// --no-cross-namespace-refs.
const ReasonCrossNamespaceReference = "CrossNamespaceReference"

// Dimension is one dimension value of an observation.
type Dimension struct {
	// name of the dimension.
	Name string `json:"name"`
	// value of the dimension.
	Value string `json:"value"`
}

// EventDrivenAnnotation turns event-driven mode on ("true") or off
// ("false") for one metric; spec.eventDriven has the same effect.
const EventDrivenAnnotation = "metrics.cloud.sap/event-driven"

// ConditionReady is the condition every kind of this API reports.
const ConditionReady = "Ready"

// Reasons of the Ready condition, shared with the events the operator emits.
const (
	ReasonReady              = "Ready"
	ReasonTargetNotFound     = "TargetNotFound"
	ReasonInvalidProjection  = "InvalidProjection"
	ReasonInvalidSelector    = "InvalidSelector"
	ReasonInvalidValueFrom   = "InvalidValueFrom"
	ReasonDataSinkNotFound   = "DataSinkNotFound"
	ReasonDataSinkNotReady   = "DataSinkNotReady"
	ReasonSecretNotFound     = "SecretNotFound"
	ReasonSecretKeyMissing   = "SecretKeyMissing"
	ReasonInvalidEndpoint    = "InvalidEndpoint"
	ReasonInvalidCertificate = "InvalidCertificate"
	ReasonForbidden          = "Forbidden"
	ReasonClusterUnreachable = "ClusterUnreachable"
	ReasonExportFailed       = "ExportFailed"
	ReasonDuplicateName      = "DuplicateName"
	ReasonPending            = "Pending"
)

// Reasons for metrics refused because of what their spec asks for, so
// that one tenant's metric cannot harm the operator or other metrics.
const (
	// ReasonReservedName: the exported name clashes with a family the
	// operator serves itself on /metrics (go_, process_, workqueue_, ...).
	ReasonReservedName = "ReservedName"
	// ReasonSecretDataForbidden: a projection, valueFrom or field selector
	// could read the data or stringData of a Secret; Secrets can be
	// counted and grouped by their metadata and type only.
	ReasonSecretDataForbidden = "SecretDataForbidden"
	// ReasonSeriesLimitExceeded: the metric has more series than
	// spec.maxSeries or the operator's --max-series-per-metric allow.
	ReasonSeriesLimitExceeded = "SeriesLimitExceeded"
	// ReasonLabelValueTooLong: a dimension value is longer than the
	// operator's --max-label-value-length.
	ReasonLabelValueTooLong = "LabelValueTooLong"
	// ReasonSeriesBudgetExceeded: the operator's series budget for all
	// metrics together (--max-series-total) is used up.
	ReasonSeriesBudgetExceeded = "SeriesBudgetExceeded"
	// ReasonObjectLimitExceeded: the metric's watch, or its poll's list,
	// returned more objects than the operator's --max-objects-per-watch
	// allow (a cluster far larger than expected, or a remote API server
	// that sends without end).
	ReasonObjectLimitExceeded = "ObjectLimitExceeded"
	// ReasonResponseTooLarge: a remote cluster's API server sent a
	// response (a LIST page, discovery) or a watch event larger than the
	// operator's --max-remote-response-bytes allow; nothing of it is used.
	ReasonResponseTooLarge = "ResponseTooLarge"
	// ReasonTenantLimitExceeded: the metric needs a watch of a remote
	// cluster that the namespace of the cluster's access may not have:
	// one more watch than --max-remote-watches-per-namespace allow, or
	// more objects on its remote watches together than
	// --max-remote-objects-per-namespace.
	ReasonTenantLimitExceeded = "TenantLimitExceeded"
)

// CommonStatus is embedded in the status of every kind.
type CommonStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions describe the object's state. "Ready" is True when the
	// object works as specified; when False its reason says why
	// (TargetNotFound, InvalidProjection, InvalidSelector,
	// DataSinkNotFound, SecretNotFound, Forbidden, ClusterUnreachable,
	// ExportFailed, ...) and its message what to do.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
