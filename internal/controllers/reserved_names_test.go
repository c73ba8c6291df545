package controllers_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// processGauge is a family the process serves outside the reserved
// prefixes, registered before the operator starts as a library would.
const processGauge = "tenant_library_up"

func init() {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: processGauge, Help: "A library's own gauge."})
	g.Set(1)
	ctrlmetrics.Registry.MustRegister(g)
}

// TestReservedNamesAreRefused declares metrics named after the operator's
// own families, in both modes: each is refused with ReservedName, /metrics
// keeps answering with the operator's families untouched, and a metric
// beside them stays current.
func TestReservedNamesAreRefused(t *testing.T) {
	testenv.Require(t, env)
	ns := "reserved-names"
	createNamespace(t, ns)
	cm := v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	neighbour := eventDriven(ns, "neighbour", v1alpha1.MetricSpec{Name: "reserved_neighbour", Target: cm, Namespace: ns})
	create(t, configMap(ns, "one", nil), neighbour)
	waitSamplesWithin(t, eventTimeout, "reserved_neighbour", "{cluster=local,kind=ConfigMap,version=v1} 1")

	var refused []*v1alpha1.Metric
	for i, name := range []string{"go_goroutines", "metrics_operator_events_total", processGauge} {
		polling := newMetric(ns, fmt.Sprintf("polling-%d", i), v1alpha1.MetricSpec{Name: name, Target: cm, Namespace: ns})
		events := eventDriven(ns, fmt.Sprintf("events-%d", i), v1alpha1.MetricSpec{Name: name, Target: cm, Namespace: ns})
		create(t, polling, events)
		refused = append(refused, polling, events)
	}
	for _, m := range refused {
		waitReady(t, m, func() []metav1.Condition { return m.Status.Conditions }, metav1.ConditionFalse, v1alpha1.ReasonReservedName)
	}
	t.Logf("ReservedName: %s", findReady(refused[0]).Message)

	// The scrape succeeds (scrape.Families fails on anything but 200) and
	// the operator's families are its own: no sample carries the metrics'
	// labels.
	fams, err := scrape.Families(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go_goroutines", "metrics_operator_events_total", processGauge} {
		f := fams[name]
		if f == nil {
			t.Errorf("%s is not served", name)
			continue
		}
		for _, s := range scrape.Samples(fams, name) {
			if s.Labels["kind"] == "ConfigMap" {
				t.Errorf("%s serves a user's series %v", name, s)
			}
		}
	}
	if got := scrape.Strings(scrape.Samples(fams, processGauge)); len(got) != 1 || got[0] != "{} 1" {
		t.Errorf("%s = %v, want the library's {} 1", processGauge, got)
	}

	// The neighbour stays current.
	create(t, configMap(ns, "two", nil))
	waitSamplesWithin(t, eventTimeout, "reserved_neighbour", "{cluster=local,kind=ConfigMap,version=v1} 2")

	// A refused metric recovers as soon as its name is fixed.
	m := refused[1]
	before := m.DeepCopy()
	m.Spec.Name = "reserved_renamed"
	if err := env.Client.Patch(t.Context(), m, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	waitReadyWithin(t, 20*time.Second, m, func() []metav1.Condition { return m.Status.Conditions }, metav1.ConditionTrue, v1alpha1.ReasonReady)
	waitSamplesWithin(t, eventTimeout, "reserved_renamed", "{cluster=local,kind=ConfigMap,version=v1} 2")
}
