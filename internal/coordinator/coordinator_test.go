package coordinator

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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

// last returns the number of metrics pushed so far and the last one.
func (r *recorder) last() (int, otlp.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pushes) == 0 {
		return 0, otlp.Metric{}
	}
	return len(r.pushes), r.pushes[len(r.pushes)-1]
}

// start runs a coordinator pushing to a recorder until t ends. Tests call
// it within a synctest bubble, so their sleeps take no real time and a
// sleep followed by synctest.Wait sees every push due by then.
func start(t *testing.T, minInterval time.Duration) (*Coordinator, *recorder) {
	t.Helper()
	sinks := datasink.NewStore()
	sinks.Set(types.NamespacedName{Namespace: "ns", Name: "sink"}, &datasink.Target{Fingerprint: "x"}, nil)
	rec := &recorder{}
	c := newCoordinator(t, Options{MinExportInterval: minInterval, Sinks: sinks, Exporter: rec, Prometheus: promexport.NewCollector()})
	_, stop := run(t, c)
	t.Cleanup(stop)
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
	synctest.Test(t, func(t *testing.T) {
		c, rec := start(t, 300*time.Millisecond)
		src := &valueSource{}
		c.Publish(update(src, time.Hour), true)
		for i := range 200 {
			src.set(int64(i))
			c.Changed(update(src, 0).Key) // as the event path does per event
		}
		time.Sleep(time.Second)
		synctest.Wait()
		// The first publish pushes at once, the other 199 make one more push
		// after the minimum interval.
		n, last := rec.last()
		if n < 1 || n > 2 {
			t.Fatalf("200 changes made %d pushes, want 1 or 2", n)
		}
		if last.Points[0].Value != 199 {
			t.Fatalf("last push carries %d, want the latest value 199", last.Points[0].Value)
		}
	})
}

// TestTrackerFollowsTheMetric reports changes through a Tracker made
// before the metric is published, across its Remove and a new Publish
// (a metric deleted and created again): each change after a Publish is
// pushed with the current value, none while the metric is gone.
func TestTrackerFollowsTheMetric(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := start(t, 100*time.Millisecond)
		src := &valueSource{}
		key := update(src, 0).Key
		tr := c.Tracker(key)
		tr.Changed() // not published yet: nothing to push
		time.Sleep(time.Second)
		synctest.Wait()
		if n := rec.count(); n != 0 {
			t.Fatalf("a change before the first Publish made %d pushes", n)
		}
		for round := range 2 {
			c.Publish(update(src, time.Hour), true)
			time.Sleep(time.Second)
			synctest.Wait()
			n := rec.count()
			src.set(int64(10 + round))
			tr.Changed()
			time.Sleep(time.Second)
			synctest.Wait()
			got, last := rec.last()
			if got != n+1 || last.Points[0].Value != int64(10+round) {
				t.Fatalf("round %d: the tracked change made %d pushes, the last carrying %v; want one with %d", round, got-n, last.Points, 10+round)
			}
			c.Remove(key)
			tr.Changed()
			time.Sleep(time.Second)
			synctest.Wait()
			if rec.count() != got {
				t.Fatalf("round %d: a change after Remove was pushed", round)
			}
		}
	})
}

func TestUnchangedPublishWaitsForHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
		synctest.Wait()
		if n := rec.count(); n != 1 {
			t.Fatalf("unchanged publishes made %d pushes, want 1", n)
		}
		for rec.count() < 2 {
			if time.Since(first) > 10*heartbeat {
				t.Fatal("no heartbeat push")
			}
			time.Sleep(20 * time.Millisecond)
			synctest.Wait()
		}
		if since := time.Since(first); since < heartbeat {
			t.Fatalf("second push after %s, before the heartbeat interval %s", since, heartbeat)
		}
	})
}

func TestRemoveStopsPushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := start(t, 10*time.Millisecond)
		src := &valueSource{value: 1}
		c.Publish(update(src, 100*time.Millisecond), true)
		time.Sleep(50 * time.Millisecond)
		c.Remove(update(src, 0).Key)
		synctest.Wait()
		n := rec.count()
		if n == 0 {
			t.Fatal("no push before Remove")
		}
		time.Sleep(300 * time.Millisecond) // three heartbeats
		synctest.Wait()
		if rec.count() != n {
			t.Fatalf("pushes went on after Remove: %d → %d", n, rec.count())
		}
	})
}

func TestMetricsOfOneSinkShareRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := start(t, 200*time.Millisecond)
		for i := range 50 {
			u := update(&valueSource{value: int64(i)}, time.Hour)
			u.Key.Name = "m" + strconv.Itoa(i)
			u.Name = u.Key.Name
			c.Publish(u, true)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		// A metric the first push catches between its Publish and the
		// change count that follows goes again with the batch, so count
		// the distinct ones.
		pushed := map[string]bool{}
		for _, m := range rec.pushes {
			pushed[m.Name] = true
		}
		if len(pushed) != 50 {
			t.Fatalf("pushed %d distinct metrics, want all 50", len(pushed))
		}
		// The first publish may go out alone; the other 49 wait for the
		// minimum interval and share one request.
		if rec.requests > 2 {
			t.Fatalf("50 metrics on one sink took %d requests, want at most 2", rec.requests)
		}
	})
}

// samples counts what the collector serves on a scrape in the text
// format, from its stored renderings.
func samples(c *Coordinator) int {
	var b bytes.Buffer
	if err := c.opts.Prometheus.WriteText(&b, nil); err != nil {
		panic(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(&b)
	if err != nil {
		panic(err)
	}
	n := 0
	for _, f := range fams {
		n += len(f.GetMetric())
	}
	return n
}

// TestSetErrorWithdraws checks that a metric in error is neither served
// nor pushed (not even by its heartbeat), that events meanwhile do not
// bring it back, and that the next Publish does, with current values.
func TestSetErrorWithdraws(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := start(t, 10*time.Millisecond)
		src := &valueSource{value: 1}
		u := update(src, 100*time.Millisecond)
		c.Publish(u, true)
		synctest.Wait()
		if rec.count() == 0 {
			t.Fatal("no push of the published metric")
		}
		if n := samples(c); n != 1 {
			t.Fatalf("published metric serves %d samples, want 1", n)
		}

		c.SetError(u.Key, 0, errors.New("gone"))
		if n := samples(c); n != 0 {
			t.Fatalf("metric in error serves %d samples, want none", n)
		}
		synctest.Wait() // a push already under way may land
		n := rec.count()
		src.set(2)
		c.Changed(u.Key)
		time.Sleep(500 * time.Millisecond) // five heartbeats
		synctest.Wait()
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
		// The error cleared a heartbeat or more after the last push, so the
		// minimum interval is all the push may wait.
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		pushed, last := rec.last()
		if pushed <= n || last.Points[0].Value != 3 {
			t.Fatalf("no push of the current value 3 after the error cleared (%d pushes, last %d)", pushed-n, last.Points[0].Value)
		}
	})
}

// TestStalePublishIgnored checks that a producer overtaken by a newer
// generation of the same object cannot bring its series back.
func TestStalePublishIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { testStalePublishIgnored(t) })
}

func testStalePublishIgnored(t *testing.T) {
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

// TestQuietTrackerLosesNoChange sends bursts of changes through a Tracker
// while the metric's push and status check are queued (the fast path that
// takes no lock), some right after a push or a status write ran: every
// burst is pushed with its last value, the written status carries the
// time of the burst's last change, and /metrics' version moves with each
// change. Pushes and status checks each run often in turn, the other
// seldom, so that neither hides a change the other lost.
func TestQuietTrackerLosesNoChange(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		minExport, statusInterval time.Duration
	}{
		{"pushes", 100 * time.Millisecond, time.Hour},
		{"status", time.Hour, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { quietTracker(t, tc.minExport, tc.statusInterval) })
		})
	}
}

func quietTracker(t *testing.T, minExport, statusInterval time.Duration) {
	var (
		mu      sync.Mutex
		written []Status
	)
	sinks := datasink.NewStore()
	sinks.Set(types.NamespacedName{Namespace: "ns", Name: "sink"}, &datasink.Target{Fingerprint: "x"}, nil)
	rec := &recorder{}
	c := newCoordinator(t, Options{MinExportInterval: minExport, StatusInterval: statusInterval, Sinks: sinks,
		Exporter: rec, Prometheus: promexport.NewCollector(),
		StatusWriters: map[string]StatusWriter{"Metric": StatusWriterFunc(func(_ context.Context, _ Key, s Status) error {
			mu.Lock()
			written = append(written, s)
			mu.Unlock()
			return nil
		})}})
	_, stop := run(t, c)
	defer stop()

	src := &valueSource{}
	key := update(src, 0).Key
	tr := c.Tracker(key)
	c.Publish(update(src, 24*time.Hour), true)
	time.Sleep(2 * time.Second)
	synctest.Wait()
	version := func() uint64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.metrics[key].version.Load()
	}
	for round := range 4 {
		pushes, v := rec.count(), version()
		var lastChange time.Time
		for i := range 50 {
			src.set(int64(round*100 + i))
			tr.Changed()
			lastChange = time.Now()
			time.Sleep(5 * time.Millisecond) // spread over the push's queueing
		}
		if got := version() - v; got != 50 {
			t.Fatalf("round %d: 50 changes moved the version by %d", round, got)
		}
		want := int64(round*100 + 49)
		if minExport < time.Hour {
			time.Sleep(time.Second)
			synctest.Wait()
			n, last := rec.last()
			if n <= pushes || last.Points[0].Value != want {
				t.Fatalf("round %d: %d pushes, the last carrying %v; want the burst's last value %d", round, n-pushes, last.Points, want)
			}
			continue
		}
		time.Sleep(2 * statusInterval)
		synctest.Wait()
		mu.Lock()
		s := written[len(written)-1]
		mu.Unlock()
		if s.Total != want || !s.Timestamp.Equal(lastChange) {
			t.Fatalf("round %d: status has total %d observed at %s, want %d at the last change %s",
				round, s.Total, s.Timestamp, want, lastChange)
		}
	}
}

// gatedRecorder is a recorder whose pushes wait until the test opens the
// gate, so that changes can be made while a push runs.
type gatedRecorder struct {
	recorder
	started chan struct{}
	gate    chan struct{}
}

func (r *gatedRecorder) Export(ctx context.Context, sink string, t *datasink.Target, ms []otlp.Metric) error {
	r.started <- struct{}{}
	<-r.gate
	return r.recorder.Export(ctx, sink, t, ms)
}

// TestChangeDuringPushIsPushed makes a change through a Tracker while the
// push of the previous one runs, and no change after it: the push read
// the series before the change, so another push must carry it.
func TestChangeDuringPushIsPushed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sinks := datasink.NewStore()
		sinks.Set(types.NamespacedName{Namespace: "ns", Name: "sink"}, &datasink.Target{Fingerprint: "x"}, nil)
		rec := &gatedRecorder{started: make(chan struct{}), gate: make(chan struct{})}
		c := newCoordinator(t, Options{MinExportInterval: 100 * time.Millisecond, StatusInterval: time.Hour, Sinks: sinks,
			Exporter: rec, Prometheus: promexport.NewCollector()})
		_, stop := run(t, c)
		defer stop()

		src := &valueSource{}
		tr := c.Tracker(update(src, 0).Key)
		c.Publish(update(src, 24*time.Hour), true)
		<-rec.started
		rec.gate <- struct{}{}
		time.Sleep(time.Second)
		synctest.Wait()
		src.set(1)
		tr.Changed() // queues a push, and makes the metric quiet
		<-rec.started
		src.set(2)
		tr.Changed() // while that push runs
		rec.gate <- struct{}{}
		time.Sleep(time.Second)
		select {
		case <-rec.started:
			rec.gate <- struct{}{}
		case <-time.After(time.Minute):
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, last := rec.last(); last.Points[0].Value != 2 {
			t.Fatalf("the last push carries %v, want the change made during the push before it (2)", last.Points)
		}
	})
}

// TestMetricsFollowTheAggregateUntold changes an event-driven metric's
// aggregate without telling the coordinator (the event path tells a busy
// metric only now and then): /metrics shows each change at the next
// scrape, and a new aggregate published for the metric (a spec change)
// is shown at once even if its counts are lower than the old one's.
func TestMetricsFollowTheAggregateUntold(t *testing.T) {
	c := newCoordinator(t, Options{MinExportInterval: time.Hour, Sinks: datasink.NewStore(), Exporter: &recorder{},
		Prometheus: promexport.NewCollector()})
	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	obj := func(i int) map[string]any {
		return map[string]any{"metadata": map[string]any{"name": strconv.Itoa(i), "uid": strconv.Itoa(i)}}
	}
	publish := func(agg *evaluation.Aggregate) {
		c.Publish(Update{Key: Key{Kind: "Metric", Namespace: "ns", Name: "m"}, Name: "m", Interval: time.Hour,
			Mode: v1alpha1.ModeEventDriven, Source: AggregateSource{Cluster: "local", Aggregate: agg}}, true)
	}
	agg := evaluation.NewAggregate(e)
	publish(agg)
	for i := range 3 {
		agg.Upsert(strconv.Itoa(i), obj(i))
		if got, want := served(t, c, "m"), []string{"{cluster=local} " + strconv.Itoa(i+1)}; !slices.Equal(got, want) {
			t.Fatalf("after %d untold changes /metrics shows %v, want %v", i+1, got, want)
		}
	}
	// A new aggregate whose own count of changes is lower.
	fresh := evaluation.NewAggregate(e)
	fresh.Upsert("8", obj(8))
	fresh.Upsert("9", obj(9))
	publish(fresh)
	if got, want := served(t, c, "m"), []string{"{cluster=local} 2"}; !slices.Equal(got, want) {
		t.Fatalf("after publishing a new aggregate /metrics shows %v, want %v", got, want)
	}
}
