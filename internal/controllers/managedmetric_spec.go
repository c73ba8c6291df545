package controllers

import (
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
)

// managedMetricKind is the coordinator's Key.Kind for ManagedMetric objects.
const managedMetricKind = "ManagedMetric"

// managedKindDimensions are the dimensions naming the managed kind of a
// series when a ManagedMetric does not set spec.dimensions. They come
// first in every series, before the projected dimensions.
var managedKindDimensions = []string{"group", "version", "kind"}

// unknownStatus is the value of a missing Ready or Synced condition, as
// Kubernetes itself reports a condition it cannot tell.
var unknownStatus = &apiextensionsv1.JSON{Raw: []byte(`"Unknown"`)}

// managedDefaultDimensions group managed resources by the statuses of
// their Ready and Synced conditions, the two every Crossplane managed
// resource carries.
var managedDefaultDimensions = []v1alpha1.Projection{
	{Name: "ready", FieldPath: "status.conditions[?(@.type=='Ready')].status", Default: unknownStatus},
	{Name: "synced", FieldPath: "status.conditions[?(@.type=='Synced')].status", Default: unknownStatus},
}

// managedDimensions returns the projections of m and whether they are the
// defaults, which also name each series' group, version and kind.
func managedDimensions(m *v1alpha1.ManagedMetric) ([]v1alpha1.Projection, bool) {
	if len(m.Spec.Dimensions) > 0 {
		return m.Spec.Dimensions, false
	}
	return managedDefaultDimensions, true
}

// CompileManagedMetric compiles a ManagedMetric's spec for one managed
// kind. The spec is the same for every kind; compiling per kind keeps the
// evaluation engine's per-kind checks (the Secret payload rules) in force
// whatever kinds a cluster serves.
func (g Guard) CompileManagedMetric(m *v1alpha1.ManagedMetric, kind schema.GroupKind) (*evaluation.Evaluator, error) {
	dims, _ := managedDimensions(m)
	if err := checkProjectionNames(dims, "spec.dimensions"); err != nil {
		return nil, err
	}
	if g.Names != nil {
		if err := g.Names.CheckName(m.MetricName()); err != nil {
			return nil, err
		}
	}
	return evaluation.Compile(evaluation.Spec{
		LabelSelector:    m.Spec.LabelSelector,
		FieldSelector:    m.Spec.FieldSelector,
		Projections:      dims,
		ProjectionsField: "spec.dimensions",
		Target:           kind,
	})
}

// managedDimensionNames are the dimension names of a ManagedMetric's
// series, after cluster.
func managedDimensionNames(m *v1alpha1.ManagedMetric) []string {
	dims, defaults := managedDimensions(m)
	var names []string
	if defaults {
		names = append(names, managedKindDimensions...)
	}
	for _, d := range dims {
		names = append(names, d.Name)
	}
	return names
}

// managedInterval returns spec.interval, or its schema default for
// objects written before the default existed.
func managedInterval(m *v1alpha1.ManagedMetric) time.Duration {
	if d := m.Spec.Interval.Duration; d > 0 {
		return d
	}
	return 10 * time.Minute
}

// maxSeries is the series cap of a metric: the operator's, lowered by the
// metric's spec.maxSeries; 0 means none.
func (g Guard) maxSeries(spec *int32) int {
	l := g.Limits
	if spec != nil {
		l = l.Lower(int(*spec))
	}
	return l.MaxSeries
}
