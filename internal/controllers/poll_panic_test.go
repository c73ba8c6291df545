package controllers

import (
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/reason"
)

// TestPollPanicMarksSpecBroken: a panic while a poll evaluates its
// objects (here a compiled spec without an aggregate, as no real
// evaluator panic is known) is recovered, and the compiled spec is marked
// broken with InvalidProjection, so the reconciler stops evaluating it.
func TestPollPanicMarksSpecBroken(t *testing.T) {
	c := &compiled{generation: 1}
	changed, err := replace(coordinator.Key{Kind: metricKind, Namespace: "ns", Name: "m"}, c,
		[]map[string]any{{"metadata": map[string]any{"name": "x"}}})
	if changed || err != nil {
		t.Fatalf("replace = %v, %v; want no change and no error", changed, err)
	}
	if c.broken == nil || reason.Of(c.broken, "") != v1alpha1.ReasonInvalidProjection {
		t.Fatalf("broken = %v, want an InvalidProjection error", c.broken)
	}
}
