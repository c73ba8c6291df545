package controllers_test

import (
	"fmt"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestPollingBudgetAcrossPolls has two polling metrics of one namespace
// want more series together than the namespace's budget: the one that
// polled first keeps its series poll after poll (a poll that keeps its
// number of series is not refused by a full budget), the other reports
// SeriesBudgetExceeded; deleting the first gives its series back, and the
// other gets them at its next poll.
func TestPollingBudgetAcrossPolls(t *testing.T) {
	testenv.Require(t, env)
	const ns, objects = "poll-budget", 120 // two metrics want 240 series, 200 allowed
	createNamespace(t, ns)
	var names []string
	for i := range objects {
		names = append(names, fmt.Sprint("cm-", i))
		create(t, configMap(ns, names[i], nil))
	}
	spec := func(name string) v1alpha1.MetricSpec {
		return v1alpha1.MetricSpec{Name: name, Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Namespace: ns, Projections: []v1alpha1.Projection{{Name: "name", FieldPath: "metadata.name"}}}
	}
	first, second := newMetric(ns, "first", spec("poll_budget_first")), newMetric(ns, "second", spec("poll_budget_second"))
	create(t, first)
	waitSamples(t, "poll_budget_first", namesOf(names...)...)
	create(t, second)
	reason := func(m *v1alpha1.Metric) (string, error) {
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(m), m); err != nil {
			return "", err
		}
		if c := findReady(m); c != nil && c.ObservedGeneration == m.Generation {
			return c.Reason, nil
		}
		return "", nil
	}
	testenv.Eventually(t, pollTimeout, func() error {
		r, err := reason(second)
		if err != nil {
			return err
		}
		if r != v1alpha1.ReasonSeriesBudgetExceeded {
			return fmt.Errorf("second metric: reason %q, want %s", r, v1alpha1.ReasonSeriesBudgetExceeded)
		}
		return nil
	})
	// Polls go on (10s each): the first metric keeps its series and stays
	// Ready, the second stays refused.
	time.Sleep(25 * time.Second)
	for _, c := range []struct {
		m    *v1alpha1.Metric
		want string
	}{{first, v1alpha1.ReasonReady}, {second, v1alpha1.ReasonSeriesBudgetExceeded}} {
		if r, err := reason(c.m); err != nil || r != c.want {
			t.Fatalf("after more polls %s: reason %q (%v), want %s", c.m.Name, r, err, c.want)
		}
	}
	waitSamples(t, "poll_budget_first", namesOf(names...)...)

	if err := env.Client.Delete(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	waitSamplesWithin(t, 2*pollTimeout, "poll_budget_second", namesOf(names...)...)
}
