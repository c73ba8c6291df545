package coordinator

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

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
