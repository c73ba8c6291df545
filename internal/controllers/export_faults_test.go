package controllers_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// The export settings of the package's operator (see TestMain): short, so
// that a test sees the backoff reach its cap and a black hole time out.
const (
	minExportInterval = 500 * time.Millisecond
	exportTimeout     = 3 * time.Second
	backoffBase       = 500 * time.Millisecond
	backoffCap        = 4 * time.Second
)

// faultDurationEnv sets how long TestExportFaultIsolation changes values
// (a Go duration); the acceptance run uses 2m.
const faultDurationEnv = "METRICS_OPERATOR_EXPORT_FAULTS_DURATION"

// attemptLog records when something happened, safe for concurrent use.
type attemptLog struct {
	mu    sync.Mutex
	times []time.Time
	// values are the pushed values (for sinks that accept).
	values []int64
	// statuses are the HTTP answers (for the proxied sink).
	statuses []int
}

func (l *attemptLog) add(v int64, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.times = append(l.times, time.Now())
	l.values = append(l.values, v)
	l.statuses = append(l.statuses, status)
}

func (l *attemptLog) snapshot() (times []time.Time, values []int64, statuses []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.times), slices.Clone(l.values), slices.Clone(l.statuses)
}

// recordPushes returns an otlpsink option logging each received push of
// metric with its largest value.
func recordPushes(metric string, log *attemptLog) otlpsink.Option {
	return otlpsink.WithOnBatch(func(b otlpsink.Batch) {
		for _, m := range b.MetricList() {
			if m.Name != metric {
				continue
			}
			var v int64
			for _, p := range m.Points {
				v = max(v, p.Value)
			}
			log.add(v, http.StatusOK)
		}
	})
}

// recordingProxy forwards OTLP/HTTP requests to sink and logs when each
// arrived and how it was answered; it returns the endpoint for a DataSink.
func recordingProxy(t *testing.T, sink *otlpsink.Sink, log *attemptLog) string {
	t.Helper()
	backend, err := url.Parse(sink.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	backend.Path = ""
	proxy := httputil.NewSingleHostReverseProxy(backend)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		arrived := time.Now()
		proxy.ServeHTTP(rec, r)
		log.mu.Lock()
		log.times = append(log.times, arrived)
		log.values = append(log.values, 0)
		log.statuses = append(log.statuses, rec.status)
		log.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/metrics"
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// blackHole accepts TCP connections and never answers; it logs each
// connection, which the HTTP exporter opens anew for every attempt.
func blackHole(t *testing.T, log *attemptLog) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			log.add(0, 0)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/v1/metrics"
}

// seqMetric is an event-driven metric whose value is the largest data.seq
// of the namespace's ConfigMaps, pushed to sink.
func seqMetric(ns, name, sink string) *v1alpha1.Metric {
	return eventDriven(ns, "m-"+sink, v1alpha1.MetricSpec{
		Name:        name,
		Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Namespace:   ns,
		ValueFrom:   &v1alpha1.ValueFrom{FieldPath: "data.seq", Aggregation: v1alpha1.AggregationMax},
		DataSinkRef: &v1alpha1.DataSinkReference{Name: sink},
	})
}

func dataSink(ns, name, endpoint string) *v1alpha1.DataSink {
	return &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: endpoint}}}
}

// TestExportFaultIsolation runs a healthy DataSink next to a black-holed
// one (accepts connections, never answers) and one answering 503, while a
// value changes 50 times a second: the healthy sink's pushes stay within
// the minimum interval plus a second, the failing sinks' attempts follow
// the backoff schedule, the heap stays flat, and the 503 sink gets the
// current value within the backoff cap once it recovers. It runs 30 s;
// set METRICS_OPERATOR_EXPORT_FAULTS_DURATION=2m for the acceptance run.
func TestExportFaultIsolation(t *testing.T) {
	testenv.Require(t, env)
	duration := 30 * time.Second
	if v := os.Getenv(faultDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", faultDurationEnv, err)
		}
		duration = d
	}
	// The 503 sink recovers this long before the end, enough for an
	// attempt at the cap and its push.
	recoverBefore := backoffCap + 4*time.Second
	if duration < 2*recoverBefore {
		t.Fatalf("%s must be at least %s", faultDurationEnv, 2*recoverBefore)
	}

	ns := "export-faults"
	createNamespace(t, ns)
	var healthyLog, failingLog, failingPushes, holeLog attemptLog
	healthy := otlpsink.Start(t, recordPushes("faults_healthy", &healthyLog))
	failing := otlpsink.Start(t, recordPushes("faults_failing", &failingPushes))
	failing.FailWith(errors.New("backend overloaded")) // retryable: HTTP 503
	sinks := []*v1alpha1.DataSink{
		dataSink(ns, "healthy", healthy.HTTPURL()),
		dataSink(ns, "failing", recordingProxy(t, failing, &failingLog)),
		dataSink(ns, "hole", blackHole(t, &holeLog)),
	}
	for _, ds := range sinks {
		create(t, ds)
	}
	// Ready first: resolving a DataSink resets its backoff, which would
	// blur the schedule checked below.
	for _, ds := range sinks {
		waitReady(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, metav1.ConditionTrue, v1alpha1.ReasonReady)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "seq", Namespace: ns}, Data: map[string]string{"seq": "0"}}
	create(t, cm,
		seqMetric(ns, "faults_healthy", "healthy"),
		seqMetric(ns, "faults_failing", "failing"),
		seqMetric(ns, "faults_hole", "hole"))
	t.Cleanup(func() {
		// Stop the failing sinks' retries for the tests that follow.
		for _, ds := range sinks {
			_ = env.Client.Delete(t.Context(), &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "m-" + ds.Name, Namespace: ns}})
		}
	})
	testenv.Eventually(t, eventTimeout, func() error {
		if _, values, _ := healthyLog.snapshot(); len(values) == 0 {
			return errors.New("no push to the healthy sink yet")
		}
		return nil
	})

	type change struct {
		at  time.Time
		seq int64
	}
	var (
		changes      []change
		heap         []uint64
		goroutines   []int
		recoveredAt  time.Time
		recoveredSeq int64
	)
	sample := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = append(heap, ms.HeapAlloc)
		goroutines = append(goroutines, runtime.NumGoroutine())
		healthy.Reset() // the receiver's own record would grow the heap
	}
	sample()
	const changeEvery = 20 * time.Millisecond // 50 changes a second
	start := time.Now()
	lastSample := start
	for seq := int64(1); time.Since(start) < duration; seq++ {
		// Paced by the clock, so a slow write is made up for.
		time.Sleep(time.Until(start.Add(time.Duration(seq) * changeEvery)))
		if recoveredAt.IsZero() && time.Since(start) >= duration-recoverBefore {
			failing.FailWith(nil)
			recoveredAt, recoveredSeq = time.Now(), seq-1
		}
		at := time.Now()
		patch := client.RawPatch(types.MergePatchType, []byte(`{"data":{"seq":"`+strconv.FormatInt(seq, 10)+`"}}`))
		if err := env.Client.Patch(t.Context(), cm, patch); err != nil {
			t.Fatalf("change %d: %v", seq, err)
		}
		changes = append(changes, change{at, seq})
		if time.Since(lastSample) >= 5*time.Second {
			sample()
			lastSample = time.Now()
		}
	}
	elapsed := time.Since(start)
	last := changes[len(changes)-1].seq
	testenv.Eventually(t, eventTimeout, func() error {
		if _, values, _ := healthyLog.snapshot(); values[len(values)-1] != last {
			return fmt.Errorf("healthy sink has %d, want the last value %d", values[len(values)-1], last)
		}
		return nil
	})
	sample()
	t.Logf("%d changes in %v (%.1f/s)", len(changes), elapsed.Round(time.Millisecond), float64(len(changes))/elapsed.Seconds())

	t.Run("healthy sink keeps up", func(t *testing.T) {
		times, values, _ := healthyLog.snapshot()
		latencies := make([]time.Duration, 0, len(changes))
		j := 0
		for _, c := range changes {
			for j < len(values) && (values[j] < c.seq || times[j].Before(c.at)) {
				j++
			}
			if j == len(values) {
				t.Fatalf("change %d never pushed", c.seq)
			}
			latencies = append(latencies, times[j].Sub(c.at))
		}
		slices.Sort(latencies)
		p := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }
		t.Logf("change → push to the healthy sink: p50 %v, p99 %v, max %v over %d changes, %d pushes",
			p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond),
			len(latencies), len(times))
		if limit := minExportInterval + time.Second; p(0.99) > limit {
			t.Errorf("p99 change → push %v, want at most --min-export-interval + 1s = %v", p(0.99), limit)
		}
	})

	backoff := coordinator.Backoff{Base: backoffBase, Cap: backoffCap}
	t.Run("503 sink follows the backoff", func(t *testing.T) {
		times, _, statuses := failingLog.snapshot()
		var failed []time.Time
		for i, at := range times {
			if at.Before(recoveredAt) {
				if statuses[i] != http.StatusServiceUnavailable {
					t.Errorf("attempt %d was answered %d, want 503", i+1, statuses[i])
				}
				failed = append(failed, at)
			}
		}
		checkBackoff(t, failed, 0, backoff)
	})
	t.Run("black-holed sink follows the backoff", func(t *testing.T) {
		times, _, _ := holeLog.snapshot()
		checkBackoff(t, times, exportTimeout, backoff)
	})
	t.Run("503 sink gets current values on recovery", func(t *testing.T) {
		times, values, _ := failingPushes.snapshot()
		if len(times) == 0 {
			t.Fatal("no push after the sink recovered")
		}
		took := times[0].Sub(recoveredAt)
		t.Logf("first push %v after recovery, carrying %d (value at recovery %d)", took.Round(time.Millisecond), values[0], recoveredSeq)
		if took > backoffCap+time.Second {
			t.Errorf("first push %v after recovery, want within the backoff cap %v (+1s)", took, backoffCap)
		}
		if values[0] < recoveredSeq {
			t.Errorf("first push after recovery carries %d, older than the value %d at recovery", values[0], recoveredSeq)
		}
	})
	t.Run("export state is visible", func(t *testing.T) {
		fams, err := scrape.Families(metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		failures := map[string]float64{}
		for _, smp := range scrape.Samples(fams, "metrics_operator_datasink_export_failures") {
			failures[smp.Labels["datasink"]] = smp.Value
		}
		if failures[ns+"/hole"] < 1 || failures[ns+"/healthy"] != 0 || failures[ns+"/failing"] != 0 {
			t.Errorf("consecutive failures by DataSink = %v, want some for the black hole and none for the others", failures)
		}
		m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "m-hole", Namespace: ns}}
		waitReady(t, m, func() []metav1.Condition { return m.Status.Conditions }, metav1.ConditionFalse, v1alpha1.ReasonExportFailed)
	})
	t.Run("heap stays flat", func(t *testing.T) {
		lo, hi := slices.Min(heap), slices.Max(heap)
		t.Logf("heap after GC: %v MiB (min %.1f, max %.1f); goroutines %v",
			mib(heap), float64(lo)/(1<<20), float64(hi)/(1<<20), goroutines)
		if hi-lo > 10<<20 {
			t.Errorf("heap grew by %.1f MiB, want within 10 MiB", float64(hi-lo)/(1<<20))
		}
		if g0, g1 := goroutines[0], goroutines[len(goroutines)-1]; g1 > g0+50 {
			t.Errorf("goroutines grew from %d to %d: connections to the failing sinks leak", g0, g1)
		}
	})
}

func mib(bs []uint64) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64)
	}
	return out
}

// checkBackoff checks the gaps between consecutive failed attempts: each
// is the attempt's duration plus the backoff after that many failures
// (never below the minimum interval), with slack for a loaded machine
// above it but hardly any below.
func checkBackoff(t *testing.T, attempts []time.Time, duration time.Duration, b coordinator.Backoff) {
	t.Helper()
	if len(attempts) < 4 {
		t.Fatalf("%d attempts, want enough to reach the backoff cap", len(attempts))
	}
	var worst time.Duration
	for i := 1; i < len(attempts); i++ {
		want := duration + max(b.Delay(i), minExportInterval)
		gap := attempts[i].Sub(attempts[i-1])
		worst = max(worst, gap-want)
		if gap < want-100*time.Millisecond || gap > want+1500*time.Millisecond {
			t.Errorf("gap before attempt %d = %v, want %v (attempt %v + backoff after %d failures)",
				i+1, gap.Round(time.Millisecond), want, duration, i)
		}
	}
	t.Logf("%d attempts; latest beyond schedule by at most %v", len(attempts), worst.Round(time.Millisecond))
}

// connCounter forwards TCP connections to backend and counts those open.
type connCounter struct {
	mu     sync.Mutex
	open   int
	total  int
	conns  []net.Conn
	listen net.Listener
}

func countConnections(t *testing.T, backend string) *connCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &connCounter{listen: ln}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", backend)
			if err != nil {
				_ = in.Close()
				continue
			}
			c.mu.Lock()
			c.open++
			c.total++
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			wg.Go(func() {
				var pipes sync.WaitGroup
				pipes.Go(func() { _, _ = io.Copy(out, in); _ = out.Close(); _ = in.Close() })
				pipes.Go(func() { _, _ = io.Copy(in, out); _ = in.Close(); _ = out.Close() })
				pipes.Wait()
				c.mu.Lock()
				c.open--
				c.mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		c.mu.Lock()
		for _, conn := range c.conns {
			_ = conn.Close()
		}
		c.mu.Unlock()
		wg.Wait()
	})
	return c
}

func (c *connCounter) addr() string { return c.listen.Addr().String() }

func (c *connCounter) counts() (open, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, c.total
}

// TestDeletedDataSinkClosesItsConnections deletes a DataSink its metric
// has pushed to: the operator closes the connections to it (a kept-alive
// HTTP connection, a gRPC channel) instead of holding them until exit.
func TestDeletedDataSinkClosesItsConnections(t *testing.T) {
	testenv.Require(t, env)
	sink := otlpsink.Start(t)
	for _, tc := range []struct{ name, scheme, backend string }{
		{"http", "http://", sink.HTTPAddr()},
		{"grpc", "grpc://", sink.GRPCAddr()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := "sink-delete-" + tc.name
			createNamespace(t, ns)
			conns := countConnections(t, tc.backend)
			endpoint := tc.scheme + conns.addr()
			if tc.name == "http" {
				endpoint += "/v1/metrics"
			}
			ds := dataSink(ns, "doomed", endpoint)
			metric := "sink_delete_" + tc.name
			create(t, ds, configMap(ns, "a", nil), newMetric(ns, "m", v1alpha1.MetricSpec{
				Name:        metric,
				Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
				Namespace:   ns,
				DataSinkRef: &v1alpha1.DataSinkReference{Name: "doomed"},
			}))
			waitPoints(t, sink, metric, map[string]int64{
				pointKey(map[string]string{"version": "v1", "kind": "ConfigMap", "cluster": "local"}): 1})
			if open, _ := conns.counts(); open == 0 {
				t.Fatal("no connection open after the push")
			}

			if err := env.Client.Delete(t.Context(), ds); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 10*time.Second, func() error {
				if open, total := conns.counts(); open > 0 {
					return fmt.Errorf("%d of %d connections to the deleted DataSink still open", open, total)
				}
				return nil
			})
			m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: ns}}
			waitReady(t, m, func() []metav1.Condition { return m.Status.Conditions }, metav1.ConditionFalse, v1alpha1.ReasonDataSinkNotFound)
		})
	}
}
