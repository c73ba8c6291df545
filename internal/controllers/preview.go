package controllers

import (
	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/evaluation"
)

// EvaluateMetric evaluates m once over objs exactly as the reconcilers do
// (the same compile, limits and panic recovery) and describes the result
// as the coordinator exports it. The preview command prints it, so what a
// user previews is what the operator would export. The error is the
// reason the metric would report.
func (g Guard) EvaluateMetric(m *v1alpha1.Metric, cluster string, objs []map[string]any) (coordinator.Update, *evaluation.Evaluator, error) {
	e, err := g.CompileMetric(m)
	if err != nil {
		return coordinator.Update{}, nil, err
	}
	c := &compiled{generation: m.Generation, agg: g.Aggregate(m.Namespace, e, m.Spec.MaxSeries)}
	key := coordinator.Key{Kind: metricKind, Namespace: m.Namespace, Name: m.Name}
	if _, err := replace(key, c, objs); err != nil {
		return coordinator.Update{}, e, err
	}
	if c.broken != nil {
		return coordinator.Update{}, e, c.broken
	}
	if err := c.agg.Err(); err != nil {
		return coordinator.Update{}, e, err
	}
	mode := v1alpha1.ModePolling
	if m.IsEventDriven(false) {
		mode = v1alpha1.ModeEventDriven
	}
	return metricUpdate(m, mode, intervalOf(m), types.NamespacedName{},
		coordinator.AggregateSource{Cluster: cluster, Aggregate: c.agg}, e), e, nil
}
