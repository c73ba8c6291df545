package controllers_test

import (
	"fmt"
	"maps"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// waitFamilyGone waits until /metrics has no family of that name at all.
func waitFamilyGone(t *testing.T, timeout time.Duration, family string) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		fams, err := scrape.Families(metricsURL)
		if err != nil {
			return err
		}
		if f, ok := fams[family]; ok {
			return fmt.Errorf("%s still on /metrics with %d samples", family, len(f.GetMetric()))
		}
		return nil
	})
}

// pointsOf counts the points of metric the receiver got.
func pointsOf(sink *otlpsink.Sink, metric string) int {
	n := 0
	for _, b := range sink.Received() {
		for _, m := range b.MetricList() {
			if m.Name == metric {
				n += len(m.Points)
			}
		}
	}
	return n
}

// TestErrorWithdrawsSeries puts a metric with objects into an error state
// (an unsupported spec.remoteClusterAccessRef: ClusterUnreachable), in
// either mode: its family leaves /metrics and the receiver gets no point
// of it, not even at its heartbeat; when the error is fixed it comes back
// with the values current then.
func TestErrorWithdrawsSeries(t *testing.T) {
	testenv.Require(t, env)
	sink := otlpsink.Start(t)
	for _, eventDrivenMode := range []bool{false, true} {
		name := "withdraw-polling"
		if eventDrivenMode {
			name = "withdraw-events"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := name
			family := "withdraw_" + ns[len("withdraw-"):]
			createNamespace(t, ns)
			m := newMetric(ns, "m", v1alpha1.MetricSpec{
				Name:        family,
				Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
				Namespace:   ns,
				EventDriven: ptr.To(eventDrivenMode),
				DataSinkRef: &v1alpha1.DataSinkReference{Name: "collector"},
			})
			create(t,
				&v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "collector", Namespace: ns},
					Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}},
				configMap(ns, "a", nil), configMap(ns, "b", nil), m)
			sample := func(n int) string { return fmt.Sprintf("{cluster=local,kind=ConfigMap,version=v1} %d", n) }
			point := map[string]string{"version": "v1", "kind": "ConfigMap", "cluster": "local"}
			waitSamples(t, family, sample(2))
			waitPoints(t, sink, family, map[string]int64{pointKey(point): 2})

			setRef := func(ref *v1alpha1.NamespacedReference) {
				t.Helper()
				testenv.Update(t, env.Client, m, func() { m.Spec.RemoteClusterAccessRef = ref })
			}
			conds := func() []metav1.Condition { return m.Status.Conditions }
			setRef(&v1alpha1.NamespacedReference{Name: "elsewhere", Namespace: ns})
			waitReadyWithin(t, pollTimeout, m, conds, metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable)
			waitFamilyGone(t, eventTimeout, family)
			// A push already under way may still land; after a second
			// nothing may, for longer than the 10 s heartbeat interval.
			time.Sleep(time.Second)
			before := pointsOf(sink, family)
			time.Sleep(m.Spec.Interval.Duration + 3*time.Second)
			if after := pointsOf(sink, family); after != before {
				t.Fatalf("the receiver got %d points of %s while it was in error", after-before, family)
			}
			waitFamilyGone(t, time.Second, family)

			create(t, configMap(ns, "c", nil))
			setRef(nil)
			waitReadyWithin(t, pollTimeout, m, conds, metav1.ConditionTrue, v1alpha1.ReasonReady)
			waitSamples(t, family, sample(3))
			waitPoints(t, sink, family, map[string]int64{pointKey(maps.Clone(point)): 3})
		})
	}
}
