package coordinator

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
)

// Key identifies a metric object.
type Key struct {
	Kind      string
	Namespace string
	Name      string
}

func (k Key) String() string { return k.Kind + "/" + k.Namespace + "/" + k.Name }

// SinkRef is the DataSink a metric pushes to.
type SinkRef struct {
	types.NamespacedName
	// Explicit is true when the metric names the sink in spec.dataSinkRef:
	// then a missing sink is an error. The operator's default sink may be
	// absent; the metric is then only served on /metrics.
	Explicit bool
}

// ClusterSeries are the series a metric has in one cluster.
type ClusterSeries struct {
	Cluster string
	Series  []evaluation.Series
}

// Update is the current result of a metric, published by its producer.
type Update struct {
	Key Key
	// Generation is the metadata.generation the series were computed for.
	Generation int64
	// Created is the metric object's creation time; it decides which of
	// two metrics declaring one name owns it.
	Created time.Time
	// Name and Description are the exported name and help text.
	Name        string
	Description string
	// Interval is spec.interval: the heartbeat of OTLP pushes.
	Interval time.Duration
	// Mode is how the producer keeps the metric current.
	Mode v1alpha1.UpdateMode
	// Sink is where OTLP pushes go.
	Sink SinkRef
	// Base are the constant dimensions (group, version, kind); empty
	// values are left out. The cluster dimension comes from Clusters.
	Base []evaluation.Dimension
	// DimensionNames are the projection names, in order.
	DimensionNames []string
	// Clusters hold the series, per cluster.
	Clusters []ClusterSeries
	// Observed is when the series were computed; zero means now.
	Observed time.Time
	// Warning, when set, is reported in the Ready condition's message
	// without making the metric unready (objects with value errors).
	Warning string
}

// Status is what the coordinator asks a StatusWriter to record.
type Status struct {
	Generation int64
	Mode       v1alpha1.UpdateMode
	Ready      metav1.Condition
	// Observed is false while no series were ever published.
	Observed   bool
	Timestamp  time.Time
	Total      int64
	Series     int
	Dimensions []v1alpha1.Dimension
}

// StatusWriter records a metric's status on its object. It is called from
// the coordinator's status worker only, and must patch (not update) the
// status so that it never races the user's spec changes.
type StatusWriter interface {
	WriteStatus(ctx context.Context, key Key, s Status) error
}

// StatusWriterFunc adapts a function to a StatusWriter.
type StatusWriterFunc func(ctx context.Context, key Key, s Status) error

// WriteStatus calls f.
func (f StatusWriterFunc) WriteStatus(ctx context.Context, key Key, s Status) error {
	return f(ctx, key, s)
}

// Timestamp is when the update's series were computed.
func (u *Update) Timestamp() time.Time { return u.Observed }
