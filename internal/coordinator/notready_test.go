package coordinator

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/datasink"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// TestNotReadyGaugeFollowsWrittenStatus checks that
// metrics_operator_metrics_not_ready counts a metric under the reason of
// the Ready=False condition written to its status, moves it when the
// condition changes and forgets it when the metric goes.
func TestNotReadyGaugeFollowsWrittenStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const kind = "NotReadyTest" // a kind of its own: the gauge is process-wide
		sinks := datasink.NewStore()
		sinks.Set(types.NamespacedName{Namespace: "ns", Name: "sink"}, &datasink.Target{Fingerprint: "x"}, nil)
		c := newCoordinator(t, Options{MinExportInterval: time.Millisecond, Sinks: sinks, Exporter: &recorder{},
			Prometheus: promexport.NewCollector(), StatusWriters: map[string]StatusWriter{
				kind: StatusWriterFunc(func(context.Context, Key, Status) error { return nil }),
			}})
		_, stop := run(t, c)
		defer stop()

		notReadyNow := func(reason string) float64 {
			var m dto.Metric
			if err := notReady.WithLabelValues(kind, reason).Write(&m); err != nil {
				t.Fatal(err)
			}
			return m.GetGauge().GetValue()
		}
		u := update(&valueSource{value: 1}, time.Hour)
		u.Key.Kind = kind

		c.Publish(u, true)
		synctest.Wait()
		if n := notReadyNow(v1alpha1.ReasonTargetNotFound); n != 0 {
			t.Fatalf("a Ready metric counts as not ready: %v", n)
		}
		c.SetError(u.Key, 0, errors.New("no such kind"))
		synctest.Wait()
		if n := notReadyNow(v1alpha1.ReasonTargetNotFound); n != 1 {
			t.Fatalf("after a TargetNotFound status, not ready = %v, want 1", n)
		}
		c.Publish(u, true)
		// A change of series is written within the status interval.
		time.Sleep(c.opts.StatusInterval + time.Second)
		synctest.Wait()
		if n := notReadyNow(v1alpha1.ReasonTargetNotFound); n != 0 {
			t.Fatalf("after it recovered, not ready = %v, want 0", n)
		}
		c.SetError(u.Key, 0, errors.New("no such kind"))
		synctest.Wait()
		c.Remove(u.Key)
		if n := notReadyNow(v1alpha1.ReasonTargetNotFound); n != 0 {
			t.Fatalf("a removed metric still counts as not ready: %v", n)
		}
	})
}
