package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// namesOf renders the samples of a family projecting metadata.name over
// ConfigMaps named cm-0, cm-1, ...
func namesOf(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "{cluster=local,kind=ConfigMap,name=" + n + ",version=v1} 1"
	}
	return out
}

// TestMaxSeries lowers the series limit through spec.maxSeries, in both
// modes: a metric over it exports nothing and reports
// SeriesLimitExceeded, a spec change brings it back, and an event-driven
// metric whose objects went below the limit recovers by itself after its
// interval. A metric beside them stays current throughout.
func TestMaxSeries(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "max-series"
	createNamespace(t, ns)
	for i := range 6 {
		create(t, configMap(ns, fmt.Sprint("cm-", i), nil))
	}
	cm := v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	byName := []v1alpha1.Projection{{Name: "name", FieldPath: "metadata.name"}}
	neighbour := eventDriven(ns, "neighbour", v1alpha1.MetricSpec{Name: "limits_neighbour", Target: cm, Namespace: ns})
	polling := newMetric(ns, "polling", v1alpha1.MetricSpec{Name: "limits_polling", Target: cm, Namespace: ns,
		Projections: byName, MaxSeries: ptr.To[int32](5)})
	events := eventDriven(ns, "events", v1alpha1.MetricSpec{Name: "limits_events", Target: cm, Namespace: ns,
		Projections: byName, MaxSeries: ptr.To[int32](5)})
	retried := eventDriven(ns, "retried", v1alpha1.MetricSpec{Name: "limits_retried", Target: cm, Namespace: ns,
		Projections: byName, MaxSeries: ptr.To[int32](5)})
	retried.Spec.Interval = metav1.Duration{Duration: 10 * time.Second}
	create(t, neighbour, polling, events, retried)

	for _, m := range []*v1alpha1.Metric{polling, events, retried} {
		waitReadyWithin(t, pollTimeout, m, func() []metav1.Condition { return m.Status.Conditions },
			metav1.ConditionFalse, v1alpha1.ReasonSeriesLimitExceeded)
	}
	t.Logf("SeriesLimitExceeded: %s", findReady(events).Message)
	waitSamplesWithin(t, eventTimeout, "limits_neighbour", "{cluster=local,kind=ConfigMap,version=v1} 6")
	fams, err := scrape.Families(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"limits_polling", "limits_events", "limits_retried"} {
		if got := scrape.Samples(fams, name); len(got) != 0 {
			t.Errorf("%s over its limit serves %v", name, got)
		}
	}

	// Raising spec.maxSeries (a spec change) brings a metric back.
	for _, m := range []*v1alpha1.Metric{polling, events} {
		before := m.DeepCopy()
		m.Spec.MaxSeries = ptr.To[int32](10)
		if err := env.Client.Patch(ctx, m, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
	}
	all := namesOf("cm-0", "cm-1", "cm-2", "cm-3", "cm-4", "cm-5")
	waitSamplesWithin(t, eventTimeout, "limits_events", all...)
	waitSamples(t, "limits_polling", all...)
	waitReady(t, events, func() []metav1.Condition { return events.Status.Conditions }, metav1.ConditionTrue, v1alpha1.ReasonReady)

	// Fewer objects: the event-driven metric left alone reads them again
	// once its interval has passed, and is within its limit.
	for _, n := range []string{"cm-4", "cm-5"} {
		if err := env.Client.Delete(ctx, configMap(ns, n, nil)); err != nil {
			t.Fatal(err)
		}
	}
	waitSamplesWithin(t, eventTimeout, "limits_neighbour", "{cluster=local,kind=ConfigMap,version=v1} 4")
	waitSamplesWithin(t, 60*time.Second, "limits_retried", namesOf("cm-0", "cm-1", "cm-2", "cm-3")...)
	waitReady(t, retried, func() []metav1.Condition { return retried.Status.Conditions }, metav1.ConditionTrue, v1alpha1.ReasonReady)

	// Going over again while running: the series go at once.
	for _, n := range []string{"cm-4", "cm-5"} {
		create(t, configMap(ns, n, nil))
	}
	waitReadyWithin(t, eventTimeout, retried, func() []metav1.Condition { return retried.Status.Conditions },
		metav1.ConditionFalse, v1alpha1.ReasonSeriesLimitExceeded)
	waitSamplesWithin(t, eventTimeout, "limits_retried")
	waitSamplesWithin(t, eventTimeout, "limits_events", all...)
	waitSamplesWithin(t, eventTimeout, "limits_neighbour", "{cluster=local,kind=ConfigMap,version=v1} 6")
}

// namespaceBudget is the suite operator's --max-series-per-namespace:
// more than any other test holds in one namespace.
const namespaceBudget = 200

// TestNamespaceBudget has one namespace's metrics ask for more series
// than its budget: some of them report SeriesBudgetExceeded naming
// --max-series-per-namespace and the namespace never holds more than its
// budget on /metrics, while a metric of another namespace, created after
// them, gets all its series.
func TestNamespaceBudget(t *testing.T) {
	testenv.Require(t, env)
	const greedy, other = "budget-greedy", "budget-other"
	const objects, metrics = 25, 9 // 225 series wanted, 200 allowed
	createNamespace(t, greedy)
	createNamespace(t, other)
	cm := v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	byName := []v1alpha1.Projection{{Name: "name", FieldPath: "metadata.name"}}
	var names []string
	for i := range objects {
		names = append(names, fmt.Sprint("cm-", i))
		create(t, configMap(greedy, names[i], nil), configMap(other, names[i], nil))
	}
	var ms []*v1alpha1.Metric
	for i := range metrics {
		m := eventDriven(greedy, fmt.Sprint("greedy-", i), v1alpha1.MetricSpec{
			Name: fmt.Sprint("budget_greedy_", i), Target: cm, Namespace: greedy, Projections: byName})
		ms = append(ms, m)
		create(t, m)
	}
	// Every greedy metric settles, Ready or over the budget, and at
	// least one is over it.
	var over *metav1.Condition
	testenv.Eventually(t, 2*time.Minute, func() error {
		over = nil
		for _, m := range ms {
			if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(m), m); err != nil {
				return err
			}
			c := findReady(m)
			switch {
			case c == nil || (c.Reason != v1alpha1.ReasonReady && c.Reason != v1alpha1.ReasonSeriesBudgetExceeded):
				return fmt.Errorf("%s not settled: %v", m.Name, c)
			case c.Reason == v1alpha1.ReasonSeriesBudgetExceeded:
				over = c
			}
		}
		if over == nil {
			return fmt.Errorf("no greedy metric over the namespace budget yet")
		}
		return nil
	})
	t.Logf("SeriesBudgetExceeded: %s", over.Message)
	if !strings.Contains(over.Message, "--max-series-per-namespace") {
		t.Errorf("message %q does not name --max-series-per-namespace", over.Message)
	}
	fams, err := scrape.Families(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for i := range metrics {
		held += len(scrape.Samples(fams, fmt.Sprint("budget_greedy_", i)))
	}
	if held > namespaceBudget {
		t.Errorf("namespace %s serves %d series, over its budget of %d", greedy, held, namespaceBudget)
	}

	// Another tenant is not affected.
	neighbour := eventDriven(other, "neighbour", v1alpha1.MetricSpec{Name: "budget_other", Target: cm, Namespace: other,
		Projections: byName})
	create(t, neighbour)
	waitSamplesWithin(t, eventTimeout, "budget_other", namesOf(names...)...)
}
