package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// result is what one scenario (mode, M) measured.
type result struct {
	mode string
	m    int
	// operator is the binary measured.
	operator string

	ready     time.Duration // operator start → correct values; readyOK false: not within ready
	readyOK   bool
	converged time.Duration // writes stopped → correct values again
	convOK    bool
	// settled is the wait, after correct values, for the start's status
	// writes and Events (waitStatusSettled); settledOK false: the window
	// began without them settled.
	settled   time.Duration
	settledOK bool

	metricsLat latency // probe write → /metrics
	otlpLat    latency // probe write → OTLP receiver
	scrapes    int
	scrapeP50  time.Duration

	window time.Duration
	// load is the machine's 1-minute load average at the window's end
	// (about the window's own, which lasts a minute): on a shared
	// machine it says how much else competed for the CPUs; -1 unknown.
	load        float64
	writes      int64 // background writes completed in the window
	writeErrors int64
	dropped     int64 // writes the writers could not start in time

	api map[string]float64 // request deltas in the window, "VERB resource"
	// apiSpan is the longest the API server's counters may have counted
	// api over: from sending the request for the first snapshot to the
	// answer to the second.
	apiSpan    time.Duration
	watchesCM  float64 // open WATCH requests on configmaps at the window's end
	watchesAll float64
	registered float64 // apiserver_registered_watchers{kind="ConfigMap"}, -1 when not served

	peakRSS    uint64
	heapMax    float64
	cpu        float64 // process_cpu_seconds_total delta in the window
	events     float64 // metrics_operator_events_total delta in the window
	relists    float64 // of which type="replace" (a watch's relist)
	exportsOK  float64
	exportsErr float64
	informers  float64
	joinLists  float64 // metrics_operator_join_lists_total over the operator's life
	startLists float64 // LIST configmaps from operator start to correct values (-1: unknown)
	// startStreams counts lists of configmaps streamed as a watch's
	// initial events over the same span.
	startStreams float64

	errs []string
}

func (r *result) errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.errs = append(r.errs, msg)
	logf("  %s M=%d: %s", r.mode, r.m, msg)
}

func (r *result) summary() string {
	return fmt.Sprintf("ready %s, /metrics p50 %s p99 %s, OTLP p50 %s p99 %s, LIST configmaps %g, watches %g, RSS %s, CPU %.2fs",
		fmtReady(r.ready, r.readyOK), r.metricsLat.pct(0.5), r.metricsLat.pct(0.99), r.otlpLat.pct(0.5), r.otlpLat.pct(0.99),
		r.api["LIST configmaps"], r.watchesCM, fmtMiB(float64(r.peakRSS)), r.cpu)
}

// opSnapshot is the operator's own metrics at one moment.
type opSnapshot struct {
	cpu, events, relists, heap, exportsOK, exportsErr, informers, joinLists float64
}

var opMetricNames = []string{
	"process_cpu_seconds_total", "metrics_operator_events_total", "go_memstats_heap_alloc_bytes",
	"metrics_operator_exports_total", "metrics_operator_informers_active", "metrics_operator_join_lists_total",
}

func snapshotOperator(ctx context.Context, p *operatorProc) (opSnapshot, error) {
	fams, _, err := fetch(ctx, scrapeClient, p.metricsURL, opMetricNames...)
	if err != nil {
		return opSnapshot{}, err
	}
	var s opSnapshot
	s.cpu, _ = sum(fams, "process_cpu_seconds_total", nil)
	s.events, _ = sum(fams, "metrics_operator_events_total", nil)
	s.relists, _ = sum(fams, "metrics_operator_events_total", map[string]string{"type": "replace"})
	s.heap, _ = sum(fams, "go_memstats_heap_alloc_bytes", nil)
	s.exportsOK, _ = sum(fams, "metrics_operator_exports_total", map[string]string{"result": "success"})
	s.exportsErr, _ = sum(fams, "metrics_operator_exports_total", map[string]string{"result": "failure"})
	s.informers, _ = sum(fams, "metrics_operator_informers_active", nil)
	s.joinLists, _ = sum(fams, "metrics_operator_join_lists_total", nil)
	return s, nil
}

// runScenario runs one operator process for (mode, M) and measures it.
// It never fails as a whole: what it could not measure is reported.
func (h *harness) runScenario(ctx context.Context, mode string, m int) *result {
	r := &result{mode: mode, m: m, operator: h.cfg.operatorBin, registered: -1, startLists: -1}
	logf("scenario %s, M=%d", mode, m)
	plog := &probeLog{}
	h.sink.Reset()
	h.otlp.Store(plog)
	defer h.otlp.Store(nil)

	ms := make([]benchMetric, m)
	for i := range ms {
		ms[i] = metricFor(i)
	}
	if err := h.createMetrics(ctx, ms, mode); err != nil {
		r.errorf("creating metrics: %v", err)
		return r
	}
	defer h.deleteMetrics(ctx)

	// Watches open before the operator starts are the API server's own.
	apiBase, err := h.apiMetrics.snapshot(ctx)
	if err != nil {
		r.errorf("API server metrics: %v", err)
	}
	name := fmt.Sprintf("%s-m%d", mode, m)
	var profile func()
	var args []string
	var pprofAddr string
	switch {
	case h.cfg.startOnly && h.cfg.startProfile != "":
		profile, args = h.profileStart(ctx, name)
	case !h.cfg.startOnly && h.cfg.windowProfile != "":
		pprofAddr, args = pprofArgs()
	}
	op, err := h.startOperator(name, args...)
	if err != nil {
		r.errorf("starting the operator: %v", err)
		return r
	}
	defer op.stop()
	if profile != nil {
		defer profile()
	}
	var (
		heapMu  sync.Mutex
		heapMax float64
	)
	noteHeap := func(fams famMap) {
		if v, ok := sum(fams, "go_memstats_heap_alloc_bytes", nil); ok {
			heapMu.Lock()
			heapMax = max(heapMax, v)
			heapMu.Unlock()
		}
	}

	// 1. Operator start → every family with the right values.
	cells := h.model.cells()
	r.ready, r.readyOK = h.waitCorrect(ctx, op, ms, cells, h.probeSeq.Load(), op.started, h.cfg.readyTimeout, noteHeap)
	logf("  correct values after %s", fmtReady(r.ready, r.readyOK))
	if apiReady, err := h.apiMetrics.snapshot(ctx); err == nil && apiBase != nil {
		r.startLists = apiReady.requests["LIST configmaps"] - apiBase.requests["LIST configmaps"]
		r.startStreams = apiReady.requests["WATCHLIST configmaps"] - apiBase.requests["WATCHLIST configmaps"]
	}
	if op.exited() {
		r.errorf("the operator exited; see %s", op.logPath)
		return r
	}
	if h.cfg.startOnly {
		h.measureStart(ctx, op, r)
		return r
	}

	// 2. The start's status writes and Events, then background writes,
	// warm-up, and the steady window with probes.
	r.settled, r.settledOK = h.waitStatusSettled(ctx, op, m+1, mode != modePolling, h.cfg.readyTimeout)
	logf("  start's status writes settled after %s", fmtReady(r.settled, r.settledOK))
	writers := h.startWriters(ctx, h.cfg.writesPerSecond)
	sleepCtx(ctx, h.cfg.warmup)
	apiBefore, err := h.apiMetrics.snapshot(ctx)
	if err != nil {
		r.errorf("API server metrics: %v", err)
	}
	opBefore, err := snapshotOperator(ctx, op)
	if err != nil {
		r.errorf("operator metrics: %v", err)
	}
	writesBefore, errsBefore, droppedBefore := writers.counts()
	windowStart := time.Now()
	var windowProfile func()
	if pprofAddr != "" {
		windowProfile = h.profileWindow(ctx, pprofAddr, name)
	}

	spacing := 5 * time.Millisecond
	if mode == modePolling {
		spacing = 200 * time.Millisecond
	}
	sc := h.startProbeScraper(ctx, op, plog, spacing, noteHeap)
	h.writeProbes(ctx, plog, sc, h.cfg.duration)
	if windowProfile != nil {
		windowProfile()
	}

	r.window = time.Since(windowStart)
	r.load = loadAverage()
	apiAfter, err := h.apiMetrics.snapshot(ctx)
	if err != nil {
		r.errorf("API server metrics: %v", err)
	}
	opAfter, err := snapshotOperator(ctx, op)
	if err != nil {
		r.errorf("operator metrics: %v", err)
	}
	writesAfter, errsAfter, droppedAfter := writers.counts()
	r.writes, r.writeErrors, r.dropped = writesAfter-writesBefore, errsAfter-errsBefore, droppedAfter-droppedBefore
	writesStopped := time.Now()
	if err := writers.stop(ctx); err != nil {
		r.errorf("background writes: %v", err)
	}

	// 3. Let the last probe write arrive (bounded), then compute latencies.
	settle := h.cfg.settleTimeout
	if mode == modePolling {
		settle = max(settle, 2*h.cfg.pollInterval+5*time.Second)
	}
	last := plog.lastSeq()
	deadline := time.Now().Add(settle)
	for ctx.Err() == nil && time.Now().Before(deadline) && (plog.seenMetrics() < last || plog.seenOTLP() < last) {
		sleepCtx(ctx, 100*time.Millisecond)
	}
	sc.stop()
	end := time.Now()
	r.metricsLat, r.otlpLat = plog.latencies(end)
	r.scrapes, r.scrapeP50 = sc.stats()

	// 4. After the writes: the values must be right again.
	probeSeq, err := h.readProbeSeq(ctx)
	if err != nil {
		r.errorf("reading the probe: %v", err)
	}
	r.converged, r.convOK = h.waitCorrect(ctx, op, ms, h.model.cells(), probeSeq, writesStopped, h.cfg.readyTimeout, noteHeap)
	logf("  correct again %s after the writes stopped", fmtReady(r.converged, r.convOK))

	// 5. Resources.
	if apiBefore != nil && apiAfter != nil {
		r.api = delta(apiBefore.requests, apiAfter.requests)
		r.apiSpan = apiAfter.received.Sub(apiBefore.sent)
	}
	if apiBase != nil && apiAfter != nil {
		r.watchesCM = apiAfter.watches["configmaps"] - apiBase.watches["configmaps"]
		for res, v := range apiAfter.watches {
			r.watchesAll += v - apiBase.watches[res]
		}
		if v, ok := apiAfter.registered["ConfigMap"]; ok {
			r.registered = v - apiBase.registered["ConfigMap"]
		}
	}
	r.cpu = opAfter.cpu - opBefore.cpu
	r.events = opAfter.events - opBefore.events
	r.relists = opAfter.relists - opBefore.relists
	r.exportsOK = opAfter.exportsOK - opBefore.exportsOK
	r.exportsErr = opAfter.exportsErr - opBefore.exportsErr
	r.informers = opAfter.informers
	r.joinLists = opAfter.joinLists
	if rss, err := op.peakRSS(); err != nil {
		r.errorf("peak RSS: %v", err)
	} else {
		r.peakRSS = rss
	}
	heapMu.Lock()
	r.heapMax = heapMax
	heapMu.Unlock()
	return r
}

// waitCorrect scrapes the operator's /metrics until every metric and the
// probe show the expected values; it returns the time since from, and
// false when timeout passed first.
func (h *harness) waitCorrect(ctx context.Context, op *operatorProc, ms []benchMetric, cells [teams][tiers]int,
	probeSeq int64, from time.Time, timeout time.Duration, noteHeap func(famMap)) (time.Duration, bool) {
	deadline := from.Add(timeout)
	lastProblem := ""
	nextLog := time.Now().Add(15 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) && !op.exited() {
		start := time.Now()
		fams, at, err := fetch(ctx, scrapeClient, op.metricsURL)
		if err == nil {
			noteHeap(fams)
			if lastProblem = mismatch(fams, ms, cells, probeSeq); lastProblem == "" {
				return at.Sub(from), true
			}
		} else {
			lastProblem = err.Error()
		}
		if time.Now().After(nextLog) {
			logf("  waiting: %s", lastProblem)
			nextLog = time.Now().Add(15 * time.Second)
		}
		// Full scrapes of many families cost the operator CPU: space them.
		sleepCtx(ctx, max(200*time.Millisecond, 2*time.Since(start)))
	}
	if lastProblem != "" {
		logf("  not correct within %s: %s", timeout, lastProblem)
	}
	return timeout, false
}

func (h *harness) createMetrics(ctx context.Context, ms []benchMetric, mode string) error {
	objs := make([]*v1alpha1.Metric, 0, len(ms)+1)
	for _, b := range ms {
		objs = append(objs, b.object(mode, h.cfg.pollInterval, metricsNamespace))
	}
	objs = append(objs, probeMetricObject(mode, h.cfg.pollInterval))
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(objs) {
					return
				}
				if err := h.c.Create(ctx, objs[i]); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: %w", objs[i].Name, err)
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// deleteMetrics deletes every Metric of the scenario and waits (bounded)
// until they are gone, so the next operator starts from none. It runs
// after the operator stopped (defers run last first).
func (h *harness) deleteMetrics(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	if err := h.c.DeleteAllOf(ctx, &v1alpha1.Metric{}, client.InNamespace(metricsNamespace)); err != nil {
		logf("deleting metrics: %v", err)
		return
	}
	deadline := time.Now().Add(60 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		list := &v1alpha1.MetricList{}
		if err := h.c.List(ctx, list, client.InNamespace(metricsNamespace)); err == nil && len(list.Items) == 0 {
			return
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	logf("metrics not deleted within 60s")
}

func (h *harness) readProbeSeq(ctx context.Context) (int64, error) {
	cm := &corev1.ConfigMap{}
	if err := h.c.Get(ctx, client.ObjectKey{Namespace: objectsNamespace, Name: probeName}, cm); err != nil {
		return h.probeSeq.Load(), err
	}
	seq, err := strconv.ParseInt(cm.Labels["seq"], 10, 64)
	if err != nil {
		return h.probeSeq.Load(), err
	}
	h.probeSeq.Store(seq)
	return seq, nil
}

// writeProbes bumps the probe's seq label about cfg.probes times, evenly
// spread over d (with jitter, so writes do not lock in phase with the
// operator's push schedule), recording when each write was sent.
func (h *harness) writeProbes(ctx context.Context, plog *probeLog, sc *probeScraper, d time.Duration) {
	n := h.cfg.probes
	step := d / time.Duration(n)
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i)*step + time.Duration(rand.Int64N(int64(step/2)+1)))
		sleepCtx(ctx, time.Until(at))
		if ctx.Err() != nil {
			return
		}
		seq := h.probeSeq.Load() + 1
		t := time.Now()
		if err := h.patchLabels(ctx, probeName, map[string]string{"seq": strconv.FormatInt(seq, 10)}); err != nil {
			logf("  probe write %d: %v", seq, err)
			continue
		}
		h.probeSeq.Store(seq)
		plog.wrote(seq, t)
		sc.poke()
	}
	sleepCtx(ctx, time.Until(start.Add(d)))
}

// probeScraper scrapes the probe family whenever a probe write is not yet
// visible, at most once per spacing; idle otherwise. The heap is sampled
// apart, once a second: asking for go_memstats_heap_alloc_bytes makes the
// operator gather its whole process registry, which at a probe scrape
// every few milliseconds would be the benchmark's cost counted as the
// operator's (a scrape of users' families only skips that registry).
type probeScraper struct {
	stopCh   chan struct{}
	pokeCh   chan struct{}
	done     chan struct{}
	heapDone chan struct{}

	mu        sync.Mutex
	durations []time.Duration
}

func (h *harness) startProbeScraper(ctx context.Context, op *operatorProc, plog *probeLog, spacing time.Duration,
	noteHeap func(famMap)) *probeScraper {
	s := &probeScraper{stopCh: make(chan struct{}), pokeCh: make(chan struct{}, 1), done: make(chan struct{}), heapDone: make(chan struct{})}
	go func() {
		defer close(s.heapDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.stopCh:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if fams, _, err := fetch(ctx, scrapeClient, op.metricsURL, "go_memstats_heap_alloc_bytes"); err == nil {
				noteHeap(fams)
			}
		}
	}()
	go func() {
		defer close(s.done)
		var lastStart time.Time
		for {
			select {
			case <-s.stopCh:
				return
			case <-ctx.Done():
				return
			default:
			}
			if plog.seenMetrics() >= plog.lastSeq() {
				select {
				case <-s.pokeCh:
				case <-s.stopCh:
					return
				case <-ctx.Done():
					return
				}
			}
			if wait := time.Until(lastStart.Add(spacing)); wait > 0 {
				time.Sleep(wait)
			}
			lastStart = time.Now()
			fams, at, err := fetch(ctx, scrapeClient, op.metricsURL, probeMetric)
			if err != nil {
				continue
			}
			s.mu.Lock()
			s.durations = append(s.durations, at.Sub(lastStart))
			s.mu.Unlock()
			if seq, ok := visibleSeq(fams); ok {
				plog.observeMetrics(at, seq)
			}
		}
	}()
	return s
}

func (s *probeScraper) poke() {
	select {
	case s.pokeCh <- struct{}{}:
	default:
	}
}

func (s *probeScraper) stop() {
	close(s.stopCh)
	<-s.done
	<-s.heapDone
}

// stats returns the number of scrapes and their median duration (the
// resolution of the /metrics latencies).
func (s *probeScraper) stats() (int, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.durations) == 0 {
		return 0, 0
	}
	d := append([]time.Duration(nil), s.durations...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return len(d), d[len(d)/2]
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
