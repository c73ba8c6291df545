package coordinator

import (
	"context"
	"fmt"
	"sync"
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
		_, stop := run(t, c)
		defer stop()

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

// TestStatusWritesWithinTheBudgetOverAnyWindow keeps 200 metrics wanting
// a status write every second against a budget of 10 a second for two
// and a half minutes: every 60 s window, wherever it starts, holds at
// most 10 × 60 + 20 writes (the rate over the window plus the burst), and
// the budget is used.
func TestStatusWritesWithinTheBudgetOverAnyWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const qps, metrics = 10, 200
		var (
			mu    sync.Mutex
			times []time.Time
		)
		c := newCoordinator(t, Options{MinExportInterval: time.Hour, StatusInterval: time.Second, Sinks: datasink.NewStore(),
			Exporter: &recorder{}, Prometheus: promexport.NewCollector(), StatusWritesPerSecond: qps,
			StatusWriters: map[string]StatusWriter{"Metric": StatusWriterFunc(func(context.Context, Key, Status) error {
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
				return nil
			})}})
		_, stop := run(t, c)
		defer stop()

		keys := make([]Key, metrics)
		for i := range keys {
			u := update(&valueSource{}, time.Hour)
			u.Key.Name, u.Name = fmt.Sprint("m", i), fmt.Sprint("m", i)
			u.Sink = SinkRef{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "none"}}
			c.Publish(u, true)
			keys[i] = u.Key
		}
		start := time.Now()
		for time.Since(start) < 150*time.Second {
			for _, k := range keys {
				c.Changed(k)
			}
			time.Sleep(250 * time.Millisecond)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if n := len(times); n < qps*150 {
			t.Fatalf("%d writes in 150 s, want the budget used (%d)", n, qps*150)
		}
		most, j := 0, 0
		for i := range times {
			for j < len(times) && times[j].Sub(times[i]) < time.Minute {
				j++
			}
			most = max(most, j-i)
		}
		if want := qps*60 + 2*qps; most > want {
			t.Fatalf("%d writes in one 60 s window, want at most %d", most, want)
		}
		t.Logf("%d writes in 150 s, at most %d in a 60 s window", len(times), most)
	})
}

// forgettingWriter counts writes and ForgetStatus calls per key.
type forgettingWriter struct {
	mu        sync.Mutex
	writes    map[Key]int
	forgotten map[Key]int
}

func (w *forgettingWriter) WriteStatus(_ context.Context, k Key, _ Status) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes[k]++
	return nil
}

func (w *forgettingWriter) ForgetStatus(k Key) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forgotten[k]++
}

func (w *forgettingWriter) counts(k Key) (writes, forgotten int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes[k], w.forgotten[k]
}

// TestStatusOverwrittenIsWrittenAgain: a status another writer changed is
// written again although the metric did not change, no sooner than the
// status interval after the last write; a replaced object's at once; a
// removed metric is forgotten by its writer.
func TestStatusOverwrittenIsWrittenAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &forgettingWriter{writes: map[Key]int{}, forgotten: map[Key]int{}}
		c := newCoordinator(t, Options{MinExportInterval: time.Hour, StatusInterval: 10 * time.Second, Sinks: datasink.NewStore(),
			Exporter: &recorder{}, Prometheus: promexport.NewCollector(), StatusWriters: map[string]StatusWriter{"Metric": w}})
		_, stop := run(t, c)
		defer stop()

		u := update(&valueSource{}, time.Hour)
		u.Sink = SinkRef{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "none"}}
		u.Created = time.Unix(1000, 0)
		c.Publish(u, true)
		synctest.Wait()
		if n, _ := w.counts(u.Key); n != 1 {
			t.Fatalf("%d writes after the first publish, want 1", n)
		}
		time.Sleep(30 * time.Second)
		c.StatusOverwritten(u.Key, false)
		synctest.Wait()
		if n, _ := w.counts(u.Key); n != 2 {
			t.Fatalf("%d writes after another writer changed the status, want 2", n)
		}
		c.StatusOverwritten(u.Key, false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n, _ := w.counts(u.Key); n != 2 {
			t.Fatalf("%d writes 5 s after the last, want still 2 (the status interval is 10 s)", n)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n, _ := w.counts(u.Key); n != 3 {
			t.Fatalf("%d writes 10 s after the last, want 3", n)
		}
		time.Sleep(time.Second)
		c.StatusOverwritten(u.Key, true)
		synctest.Wait()
		if n, _ := w.counts(u.Key); n != 4 {
			t.Fatalf("%d writes after the object was replaced, want 4 at once", n)
		}
		// Another object of the same name, published: written at once.
		time.Sleep(time.Second)
		u.Created = time.Unix(2000, 0)
		c.Publish(u, false)
		synctest.Wait()
		if n, _ := w.counts(u.Key); n != 5 {
			t.Fatalf("%d writes after a new object of the same name was published, want 5 at once", n)
		}
		c.Remove(u.Key)
		if _, f := w.counts(u.Key); f != 1 {
			t.Fatalf("ForgetStatus called %d times on Remove, want 1", f)
		}
	})
}
