package coordinator

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/reason"
)

// behaviour decides how the fakeExporter answers a push to one sink.
type behaviour int

const (
	healthy   behaviour = iota
	rejecting           // fails at once, as a sink answering 503 does
	blackHole           // never answers: the push ends with its context
)

// fakeExporter is an Exporter whose sinks behave as configured; it
// records when each push started and what it carried.
type fakeExporter struct {
	mu       sync.Mutex
	behave   map[string]behaviour
	attempts map[string][]time.Time
	values   map[string][]int64
}

func newFakeExporter() *fakeExporter {
	return &fakeExporter{behave: map[string]behaviour{}, attempts: map[string][]time.Time{}, values: map[string][]int64{}}
}

func (f *fakeExporter) set(sink string, b behaviour) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.behave[sink] = b
}

func (f *fakeExporter) Export(ctx context.Context, key string, _ *datasink.Target, ms []otlp.Metric) error {
	f.mu.Lock()
	f.attempts[key] = append(f.attempts[key], time.Now())
	b := f.behave[key]
	f.mu.Unlock()
	switch b {
	case rejecting:
		return errors.New("503 Service Unavailable")
	case blackHole:
		<-ctx.Done()
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range ms {
		for _, p := range m.Points {
			f.values[key] = append(f.values[key], p.Value)
		}
	}
	return nil
}

func (f *fakeExporter) attemptsOf(sink string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.attempts[sink]...)
}

func (f *fakeExporter) lastValue(sink string) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.values[sink]
	if len(v) == 0 {
		return 0, false
	}
	return v[len(v)-1], true
}

// bubble runs a coordinator over sinks within the synctest bubble of t.
func bubble(t *testing.T, opts Options, sinks ...string) (*Coordinator, *fakeExporter, func()) {
	t.Helper()
	store := datasink.NewStore()
	for _, s := range sinks {
		store.Set(sinkName(s), &datasink.Target{Fingerprint: "x"}, nil)
	}
	exp := newFakeExporter()
	opts.Sinks, opts.Exporter, opts.Prometheus = store, exp, promexport.NewCollector()
	c := newCoordinator(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Start(ctx); close(done) }()
	return c, exp, func() { cancel(); <-done }
}

func sinkName(s string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: s} }

// metricOn publishes a metric of its own pushing to sink.
func metricOn(c *Coordinator, sink string, src *valueSource) Key {
	u := update(src, time.Hour)
	u.Key.Name, u.Name = "m-"+sink, "m_"+sink
	u.Sink.NamespacedName = sinkName(sink)
	c.Publish(u, true)
	return u.Key
}

// TestFailingSinkHonoursBackoff changes a metric 50 times a second while
// its sink rejects every push: the attempts must follow the backoff
// schedule however many changes arrive in between.
func TestFailingSinkHonoursBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const minInterval = 500 * time.Millisecond
		c, exp, stop := bubble(t, Options{MinExportInterval: minInterval}, "failing")
		defer stop()
		exp.set("ns/failing", rejecting)
		src := &valueSource{}
		key := metricOn(c, "failing", src)
		for i := range 50 * 60 {
			time.Sleep(20 * time.Millisecond)
			src.set(int64(i))
			c.Changed(key)
		}
		attempts := exp.attemptsOf("ns/failing")
		checkSchedule(t, attempts, 0, minInterval)
		// 0, 1, 3, 7, 15, 31 s: six attempts in the first minute.
		if len(attempts) != 6 {
			t.Errorf("%d attempts in a minute, want 6", len(attempts))
		}
	})
}

// TestBlackHoledSinksDoNotDelayOthers black-holes more sinks than a fixed
// pool of workers would have: a healthy sink's changes must still go out
// within the minimum interval, and each black-holed attempt must end at
// the export timeout. All sinks share a namespace, so its bound on
// pushes is off here: with it, the namespace's holes take its turns
// (TestNamespacePushesAtMostN).
func TestBlackHoledSinksDoNotDelayOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			minInterval = 500 * time.Millisecond
			timeout     = 10 * time.Second
		)
		names := []string{"healthy"}
		for i := range 8 {
			names = append(names, "hole-"+strconv.Itoa(i))
		}
		c, exp, stop := bubble(t, Options{MinExportInterval: minInterval, ExportTimeout: timeout, MaxPushesPerNamespace: -1}, names...)
		defer stop()
		srcs := map[string]*valueSource{}
		keys := map[string]Key{}
		for _, n := range names {
			if n != "healthy" {
				exp.set("ns/"+n, blackHole)
			}
			srcs[n] = &valueSource{}
			keys[n] = metricOn(c, n, srcs[n])
		}
		for i := 1; i <= 50*30; i++ {
			time.Sleep(20 * time.Millisecond)
			for _, n := range names {
				srcs[n].set(int64(i))
				c.Changed(keys[n])
			}
			if i%50 == 0 {
				// Everything the event path produced is handled; the value
				// of a second ago must have been pushed by now.
				synctest.Wait()
				if v, _ := exp.lastValue("ns/healthy"); v < int64(i-50) {
					t.Fatalf("after %ds the healthy sink has value %d, want at least %d", i/50, v, i-50)
				}
			}
		}
		for _, n := range names[1:] {
			checkSchedule(t, exp.attemptsOf("ns/"+n), timeout, minInterval)
		}
	})
}

// checkSchedule checks that the gap between consecutive failed attempts
// is the attempt's duration plus the default backoff, never less than
// the minimum interval.
func checkSchedule(t *testing.T, attempts []time.Time, duration, minInterval time.Duration) {
	t.Helper()
	b := Backoff{Base: DefaultExportBackoffBase, Cap: DefaultExportBackoffCap}
	bad := 0
	for i := 1; i < len(attempts); i++ {
		want := duration + max(b.Delay(i), minInterval)
		if gap := attempts[i].Sub(attempts[i-1]); gap != want {
			if bad++; bad <= 3 {
				t.Errorf("gap before attempt %d = %v, want %v (attempt duration + backoff after %d failures)", i+1, gap, want, i)
			}
		}
	}
	if bad > 3 {
		t.Errorf("%d of %d gaps off the schedule", bad, len(attempts)-1)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: time.Second, Cap: 5 * time.Minute}
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 0}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second},
		{9, 256 * time.Second}, {10, 5 * time.Minute}, {11, 5 * time.Minute}, {1000, 5 * time.Minute},
	} {
		if got := b.Delay(tc.failures); got != tc.want {
			t.Errorf("Delay(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
	if got := (Backoff{Base: 3 * time.Second, Cap: 2 * time.Second}).Delay(1); got != 2*time.Second {
		t.Errorf("a base above the cap waits %v, want the cap", got)
	}
}

// TestRecoveredSinkGetsCurrentValues fails a sink for long enough to
// reach the backoff cap, then heals it: the next attempt, within the cap,
// carries the value of that moment, not one queued while it was down.
func TestRecoveredSinkGetsCurrentValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		backoff := Backoff{Base: time.Second, Cap: 8 * time.Second}
		c, exp, stop := bubble(t, Options{MinExportInterval: 500 * time.Millisecond, ExportBackoff: backoff}, "flaky")
		defer stop()
		exp.set("ns/flaky", rejecting)
		src := &valueSource{}
		key := metricOn(c, "flaky", src)
		for i := range 50 * 30 {
			time.Sleep(20 * time.Millisecond)
			src.set(int64(i))
			c.Changed(key)
		}
		exp.set("ns/flaky", healthy)
		healed := time.Now()
		for {
			synctest.Wait()
			if _, ok := exp.lastValue("ns/flaky"); ok {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if took := time.Since(healed); took > backoff.Cap {
			t.Errorf("first push %v after the sink recovered, want within the backoff cap %v", took, backoff.Cap)
		}
		if v, _ := exp.lastValue("ns/flaky"); v != 50*30-1 {
			t.Errorf("first push after recovery carries %d, want the current value %d", v, 50*30-1)
		}
	})
}

// TestSinkChangeResetsBackoff: a DataSink whose configuration changed is
// tried at once, not after the backoff its old configuration earned.
func TestSinkChangeResetsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, exp, stop := bubble(t, Options{MinExportInterval: 100 * time.Millisecond}, "fixed")
		defer stop()
		exp.set("ns/fixed", rejecting)
		metricOn(c, "fixed", &valueSource{})
		time.Sleep(time.Minute) // five failures: the next try is 16 s away
		synctest.Wait()
		exp.set("ns/fixed", healthy)
		n := len(exp.attemptsOf("ns/fixed"))
		c.SinkChanged(sinkName("fixed"))
		synctest.Wait()
		if got := len(exp.attemptsOf("ns/fixed")); got != n+1 {
			t.Fatalf("SinkChanged made %d attempts, want one at once", got-n)
		}
		if _, ok := exp.lastValue("ns/fixed"); !ok {
			t.Error("the attempt after SinkChanged pushed nothing")
		}
	})
}

// removingExporter records the exporters the coordinator closes.
type removingExporter struct {
	*fakeExporter
	removed chan string
}

func (r removingExporter) Remove(_ context.Context, key string) error {
	r.removed <- key
	return nil
}

// TestDeletedSinkClosesExporter: when a DataSink is deleted, its exporter
// (and with it its connections) is closed.
func TestDeletedSinkClosesExporter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := datasink.NewStore()
		store.Set(sinkName("gone"), &datasink.Target{Fingerprint: "x"}, nil)
		exp := removingExporter{newFakeExporter(), make(chan string, 10)}
		c := newCoordinator(t, Options{MinExportInterval: 100 * time.Millisecond, Sinks: store, Exporter: exp, Prometheus: promexport.NewCollector()})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = c.Start(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		key := metricOn(c, "gone", &valueSource{value: 1})
		synctest.Wait()
		if _, ok := exp.lastValue("ns/gone"); !ok {
			t.Fatal("no push before the delete")
		}
		store.Delete(sinkName("gone"))
		c.SinkChanged(sinkName("gone"))
		synctest.Wait()
		select {
		case key := <-exp.removed:
			if key != "ns/gone" {
				t.Errorf("closed the exporter of %q, want ns/gone", key)
			}
		default:
			t.Fatal("the exporter of the deleted DataSink was not closed")
		}
		// Its metric learns within the minimum interval, not at its next
		// heartbeat an hour on.
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		c.mu.Lock()
		sinkErr := c.metrics[key].sinkErr
		c.mu.Unlock()
		if reason.Of(sinkErr, "") != v1alpha1.ReasonDataSinkNotFound {
			t.Errorf("metric of the deleted DataSink has error %v, want DataSinkNotFound", sinkErr)
		}
	})
}

// TestUnresolvedSinkIsNotWalkedPerChange changes metrics whose sink does
// not exist (the operator's default sink, absent; and a DataSink named
// explicitly, missing) a thousand times: the coordinator records once
// why there is nowhere to push and does not walk the sink's metrics
// again per change; the explicit one reports DataSinkNotFound. Once the
// sinks exist and SinkChanged says so, both push their current values.
func TestUnresolvedSinkIsNotWalkedPerChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := datasink.NewStore()
		exp := newFakeExporter()
		c := newCoordinator(t, Options{MinExportInterval: 100 * time.Millisecond, Sinks: store, Exporter: exp, Prometheus: promexport.NewCollector()})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = c.Start(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		srcs := map[string]*valueSource{"default": {}, "named": {}}
		keys := map[string]Key{}
		for sink, src := range srcs {
			u := update(src, time.Hour)
			u.Key.Name, u.Name = "m-"+sink, "m_"+sink
			u.Sink = SinkRef{NamespacedName: sinkName(sink), Explicit: sink == "named"}
			c.Publish(u, true)
			keys[sink] = u.Key
		}
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		walks := c.sinkWalks.Load()
		for i := range 1000 {
			time.Sleep(10 * time.Millisecond)
			for sink, src := range srcs {
				src.set(int64(i + 1))
				c.Changed(keys[sink])
			}
		}
		synctest.Wait()
		if got := c.sinkWalks.Load() - walks; got != 0 {
			t.Errorf("2,000 changes of metrics without a sink walked their sinks %d times, want 0", got)
		}
		c.mu.Lock()
		defaultErr, namedErr := c.metrics[keys["default"]].sinkErr, c.metrics[keys["named"]].sinkErr
		c.mu.Unlock()
		if defaultErr != nil {
			t.Errorf("metric of the absent default sink has error %v, want none", defaultErr)
		}
		if reason.Of(namedErr, "") != v1alpha1.ReasonDataSinkNotFound {
			t.Errorf("metric of the missing DataSink has error %v, want DataSinkNotFound", namedErr)
		}

		for sink := range srcs {
			store.Set(sinkName(sink), &datasink.Target{Fingerprint: "x"}, nil)
			c.SinkChanged(sinkName(sink))
		}
		synctest.Wait()
		for sink := range srcs {
			if v, ok := exp.lastValue("ns/" + sink); !ok || v != 1000 {
				t.Errorf("sink %s got %d (pushed: %t) after it appeared, want the current value 1000", sink, v, ok)
			}
		}
		c.mu.Lock()
		namedErr = c.metrics[keys["named"]].sinkErr
		c.mu.Unlock()
		if namedErr != nil {
			t.Errorf("metric of the DataSink now present still has error %v", namedErr)
		}
	})
}
