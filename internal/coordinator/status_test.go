package coordinator

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/internal/datasink"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// TestStatusWritesStayWithinTheBudget publishes 100 metrics at once to a
// coordinator with a budget of 10 status writes per second: the writes
// spread over about ten seconds (a burst of 20, then 10 a second) instead
// of reaching the API server together, and every metric is written.
func TestStatusWritesStayWithinTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var writes atomic.Int64
		sinks := datasink.NewStore()
		c := newCoordinator(t, Options{MinExportInterval: time.Hour, StatusInterval: time.Hour, Sinks: sinks, Exporter: &recorder{},
			Prometheus: promexport.NewCollector(), StatusWritesPerSecond: 10,
			StatusWriters: map[string]StatusWriter{"Metric": StatusWriterFunc(func(context.Context, Key, Status) error {
				writes.Add(1)
				return nil
			})}})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { _ = c.Start(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		const metrics = 100
		for i := range metrics {
			u := update(&valueSource{}, time.Hour)
			u.Key.Name = fmt.Sprint("m", i)
			u.Name = u.Key.Name
			u.Sink = SinkRef{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "none"}}
			c.Publish(u, true)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := writes.Load(); n < 50 || n > 71 {
			t.Fatalf("%d status writes in the first 5 s, want the burst of 20 and 10 a second (50 to 70)", n)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := writes.Load(); n != metrics {
			t.Fatalf("%d status writes after 15 s, want one per metric (%d)", n, metrics)
		}
	})
}
