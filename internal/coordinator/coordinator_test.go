package coordinator

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// recorder is an Exporter that records pushes.
type recorder struct {
	mu       sync.Mutex
	pushes   []otlp.Metric
	requests int
}

func (r *recorder) Export(_ context.Context, _ string, _ *datasink.Target, ms []otlp.Metric) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes = append(r.pushes, ms...)
	r.requests++
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pushes)
}

func start(t *testing.T, minInterval time.Duration) (*Coordinator, *recorder) {
	t.Helper()
	sinks := datasink.NewStore()
	sinks.Set(types.NamespacedName{Namespace: "ns", Name: "sink"}, &datasink.Target{Fingerprint: "x"}, nil)
	rec := &recorder{}
	c := New(Options{MinExportInterval: minInterval, Sinks: sinks, Exporter: rec, Prometheus: promexport.NewCollector()})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = c.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, rec
}

// valueSource is a Source with one series whose value tests set.
type valueSource struct {
	mu    sync.Mutex
	value int64
}

func (s *valueSource) set(v int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.value = v
}

func (s *valueSource) Snapshot() []ClusterSeries {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []ClusterSeries{{Cluster: "local", Series: []evaluation.Series{
		{Dimensions: []evaluation.Dimension{{Name: "v", Value: strconv.FormatInt(s.value, 10)}}, Value: s.value}}}}
}

func (s *valueSource) Warning() string { return "" }

func update(src *valueSource, interval time.Duration) Update {
	return Update{
		Key: Key{Kind: "Metric", Namespace: "ns", Name: "m"}, Name: "m", Interval: interval,
		Mode:   v1alpha1.ModeEventDriven,
		Sink:   SinkRef{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "sink"}, Explicit: true},
		Source: src,
	}
}

func TestBurstIsCoalesced(t *testing.T) {
	c, rec := start(t, 300*time.Millisecond)
	src := &valueSource{}
	c.Publish(update(src, time.Hour), true)
	for i := range 200 {
		src.set(int64(i))
		c.Changed(update(src, 0).Key) // as the event path does per event
	}
	time.Sleep(time.Second)
	// The first publish pushes at once, the other 199 make one more push
	// after the minimum interval.
	if n := rec.count(); n < 1 || n > 2 {
		t.Fatalf("200 changes made %d pushes, want 1 or 2", n)
	}
	rec.mu.Lock()
	last := rec.pushes[len(rec.pushes)-1]
	rec.mu.Unlock()
	if last.Points[0].Value != 199 {
		t.Fatalf("last push carries %d, want the latest value 199", last.Points[0].Value)
	}
}

func TestUnchangedPublishWaitsForHeartbeat(t *testing.T) {
	c, rec := start(t, 10*time.Millisecond)
	const heartbeat = 2 * time.Second
	first := time.Now()
	src := &valueSource{value: 1}
	c.Publish(update(src, heartbeat), true)
	time.Sleep(100 * time.Millisecond)
	for range 5 {
		c.Publish(update(src, heartbeat), false) // as a poll with unchanged objects does
	}
	time.Sleep(200 * time.Millisecond)
	if n := rec.count(); n != 1 {
		t.Fatalf("unchanged publishes made %d pushes, want 1", n)
	}
	for rec.count() < 2 {
		if time.Since(first) > 10*heartbeat {
			t.Fatal("no heartbeat push")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if since := time.Since(first); since < heartbeat-100*time.Millisecond {
		t.Fatalf("second push after %s, before the heartbeat interval %s", since, heartbeat)
	}
}

func TestRemoveStopsPushes(t *testing.T) {
	c, rec := start(t, 10*time.Millisecond)
	src := &valueSource{value: 1}
	c.Publish(update(src, 100*time.Millisecond), true)
	time.Sleep(50 * time.Millisecond)
	c.Remove(update(src, 0).Key)
	n := rec.count()
	time.Sleep(300 * time.Millisecond)
	if rec.count() != n {
		t.Fatalf("pushes went on after Remove: %d → %d", n, rec.count())
	}
}

func TestMetricsOfOneSinkShareRequests(t *testing.T) {
	c, rec := start(t, 200*time.Millisecond)
	for i := range 50 {
		u := update(&valueSource{value: int64(i)}, time.Hour)
		u.Key.Name = "m" + strconv.Itoa(i)
		u.Name = u.Key.Name
		c.Publish(u, true)
	}
	time.Sleep(time.Second)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.pushes) != 50 {
		t.Fatalf("pushed %d metrics, want all 50", len(rec.pushes))
	}
	// The first publish may go out alone; the other 49 wait for the
	// minimum interval and share one request.
	if rec.requests > 2 {
		t.Fatalf("50 metrics on one sink took %d requests, want at most 2", rec.requests)
	}
}

// samples counts what the collector serves on a scrape.
func samples(c *Coordinator) int {
	ch := make(chan prometheus.Metric, 100)
	c.opts.Prometheus.Collect(ch)
	close(ch)
	n := 0
	for range ch {
		n++
	}
	return n
}

// TestSetErrorWithdraws checks that a metric in error is neither served
// nor pushed (not even by its heartbeat), that events meanwhile do not
// bring it back, and that the next Publish does, with current values.
func TestSetErrorWithdraws(t *testing.T) {
	c, rec := start(t, 10*time.Millisecond)
	src := &valueSource{value: 1}
	u := update(src, 100*time.Millisecond)
	c.Publish(u, true)
	for rec.count() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if n := samples(c); n != 1 {
		t.Fatalf("published metric serves %d samples, want 1", n)
	}

	c.SetError(u.Key, 0, errors.New("gone"))
	if n := samples(c); n != 0 {
		t.Fatalf("metric in error serves %d samples, want none", n)
	}
	time.Sleep(50 * time.Millisecond) // a push already under way may land
	n := rec.count()
	src.set(2)
	c.Changed(u.Key)
	time.Sleep(500 * time.Millisecond) // five heartbeats
	if rec.count() != n {
		t.Fatalf("metric in error was pushed %d more times", rec.count()-n)
	}
	if n := samples(c); n != 0 {
		t.Fatalf("a change brought back %d samples of a metric in error", n)
	}

	src.set(3)
	c.Publish(u, false) // unchanged data, but the error cleared
	if n := samples(c); n != 1 {
		t.Fatalf("after the error cleared %d samples are served, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		pushes, last := len(rec.pushes), rec.pushes[len(rec.pushes)-1]
		rec.mu.Unlock()
		if pushes > n && last.Points[0].Value == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no push of the current value 3 after the error cleared (last %d)", last.Points[0].Value)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStalePublishIgnored checks that a producer overtaken by a newer
// generation of the same object cannot bring its series back.
func TestStalePublishIgnored(t *testing.T) {
	c, _ := start(t, time.Hour)
	u := update(&valueSource{value: 1}, time.Hour)
	u.Generation = 2
	c.SetError(u.Key, 3, errors.New("invalid spec"))
	c.Publish(u, true) // the first Publish of the object: accepted
	c.SetError(u.Key, 3, errors.New("invalid spec"))
	c.Publish(u, true) // generation 2 after generation 3 failed
	if n := samples(c); n != 0 {
		t.Fatalf("stale publish serves %d samples", n)
	}
	u.Generation = 4
	c.Publish(u, true)
	if n := samples(c); n != 1 {
		t.Fatalf("current publish serves %d samples, want 1", n)
	}
}
