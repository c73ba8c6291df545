package coordinator

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/internal/datasink"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// TestStatusWritesTakeTurnsPerTenant has a tenant publish 300 metrics
// against a budget of 10 status writes a second, then a neighbour publish
// one: the neighbour's status is written within the next few writes, not
// after the tenant's 300 (half a minute later). Before, the status queue
// was first come, first served.
func TestStatusWritesTakeTurnsPerTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu      sync.Mutex
			written []Key
		)
		c := newCoordinator(t, Options{MinExportInterval: time.Hour, StatusInterval: time.Hour, Sinks: datasink.NewStore(),
			Exporter: &recorder{}, Prometheus: promexport.NewCollector(), StatusWritesPerSecond: 10,
			StatusWriters: map[string]StatusWriter{"Metric": StatusWriterFunc(func(_ context.Context, k Key, _ Status) error {
				mu.Lock()
				written = append(written, k)
				mu.Unlock()
				return nil
			})}})
		_, stop := run(t, c)
		defer stop()

		publish := func(ns, name string) Key {
			u := update(&valueSource{}, time.Hour)
			u.Key = Key{Kind: "Metric", Namespace: ns, Name: name}
			u.Name = ns + "_" + name
			u.Sink = SinkRef{NamespacedName: types.NamespacedName{Namespace: ns, Name: "none"}}
			c.Publish(u, true)
			return u.Key
		}
		for i := range 300 {
			publish("tenant", fmt.Sprint("m", i))
		}
		synctest.Wait()
		mu.Lock()
		before := len(written)
		mu.Unlock()
		neighbour := publish("neighbour", "m")
		time.Sleep(35 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		at := slices.Index(written, neighbour)
		if at < 0 {
			t.Fatalf("the neighbour's status was never written (%d writes)", len(written))
		}
		if at-before > 2 {
			t.Errorf("the neighbour's status was write %d after it was published, want at most the second", at-before+1)
		}
		if len(written) != 301 {
			t.Errorf("%d writes, want one per metric (301)", len(written))
		}
	})
}
