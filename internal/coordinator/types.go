package coordinator

import (
	"context"
	"fmt"
	"slices"
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
	// values are left out. The cluster dimension comes from Source.
	Base []evaluation.Dimension
	// DimensionNames are the projection names, in order.
	DimensionNames []string
	// Source yields the current series. It is read when /metrics is
	// scraped, a push is made or status is written, so producers only say
	// that something changed (Publish, Changed), never render series.
	Source Source
}

// Source yields a metric's current series, per cluster.
type Source interface {
	Snapshot() []ClusterSeries
	// Warning, when not empty, is reported in the Ready condition's
	// message without making the metric unready (objects whose value
	// cannot be read).
	Warning() string
}

// DegradedSource is a Source that may be exported in part: while Degraded
// returns an error, the Ready condition is False with its reason and
// message, yet the series the Source has are exported (a federated metric
// some of whose clusters cannot be read). Errors that withdraw the whole
// metric go through SetError instead.
type DegradedSource interface {
	Source
	Degraded() error
}

// AggregateSource is the Source of a metric read from one cluster.
type AggregateSource struct {
	Cluster   string
	Aggregate *evaluation.Aggregate
}

// Snapshot returns the aggregate's series.
func (s AggregateSource) Snapshot() []ClusterSeries {
	return []ClusterSeries{{Cluster: s.Cluster, Series: s.Aggregate.Series()}}
}

// Version is the aggregate's evaluation.Aggregate.Version: /metrics
// renders the metric again when it moves, whether or not the event path
// has told the coordinator of the change yet.
func (s AggregateSource) Version() uint64 { return s.Aggregate.Version() }

// Warning reports objects without a value.
func (s AggregateSource) Warning() string {
	if n, msg := s.Aggregate.ObjectErrors(); n > 0 {
		return fmt.Sprintf("%d objects have no value (%s)", n, msg)
	}
	return ""
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

// StatusForgetter is a StatusWriter that keeps something per metric (what
// it last wrote): the coordinator tells it when a metric is gone, so that
// what it keeps does not outlive the metric.
type StatusForgetter interface {
	ForgetStatus(key Key)
}

// StatusWriterFunc adapts a function to a StatusWriter.
type StatusWriterFunc func(ctx context.Context, key Key, s Status) error

// WriteStatus calls f.
func (f StatusWriterFunc) WriteStatus(ctx context.Context, key Key, s Status) error {
	return f(ctx, key, s)
}

// sameMetadata reports whether two updates describe the metric alike, so
// that only a change of series needs a push.
func sameMetadata(a, b *Update) bool {
	return a.Generation == b.Generation && a.Name == b.Name && a.Description == b.Description &&
		a.Interval == b.Interval && a.Mode == b.Mode && a.Sink == b.Sink &&
		slices.Equal(a.Base, b.Base) && slices.Equal(a.DimensionNames, b.DimensionNames)
}
