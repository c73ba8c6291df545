package controllers_test

import (
	"fmt"
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
