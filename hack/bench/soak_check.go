package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
)

// otlpTracker keeps, from everything the receiver got, the latest push of
// every metric name and when a point of it last arrived.
type otlpTracker struct {
	mu     sync.Mutex
	sink   *otlpsink.Sink
	next   int
	latest map[string]otlpsink.Metric
	lastAt map[string]time.Time
}

func newOTLPTracker(sink *otlpsink.Sink) *otlpTracker {
	return &otlpTracker{sink: sink, latest: map[string]otlpsink.Metric{}, lastAt: map[string]time.Time{}}
}

func (t *otlpTracker) update() {
	t.mu.Lock()
	defer t.mu.Unlock()
	batches := t.sink.Received()
	for _, b := range batches[t.next:] {
		for _, m := range b.MetricList() {
			t.latest[m.Name] = m
			if len(m.Points) > 0 {
				t.lastAt[m.Name] = b.Time
			}
		}
	}
	t.next = len(batches)
}

// waitRight checks until every live metric is right (check) or timeout
// passes; it returns how long that took and the last problems.
func (s *soak) waitRight(ctx context.Context, timeout time.Duration) (time.Duration, []string) {
	start := time.Now()
	cells := s.churn.cells(s.h.model.cells())
	nextLog := start.Add(15 * time.Second)
	for {
		problems := s.check(ctx, cells)
		if len(problems) == 0 {
			return time.Since(start), nil
		}
		if ctx.Err() != nil || time.Since(start) >= timeout || s.op.exited() {
			return time.Since(start), problems
		}
		if time.Now().After(nextLog) {
			logf("  waiting for right values: %s", firstOf(problems, 3))
			nextLog = time.Now().Add(15 * time.Second)
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

func firstOf(problems []string, n int) string {
	if len(problems) <= n {
		return strings.Join(problems, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(problems[:n], "; "), len(problems)-n)
}

// check compares the operator's /metrics, the latest OTLP push of every
// live metric and the Metric objects' status with the model; it returns
// what differs.
func (s *soak) check(ctx context.Context, cells [teams][tiers]int) []string {
	var problems []string
	live := s.metrics.snapshot()
	sort.Slice(live, func(i, j int) bool { return live[i].obj < live[j].obj })
	ms := make([]benchMetric, len(live))
	for i := range live {
		ms[i] = live[i].bench()
	}
	fams, _, err := fetch(ctx, scrapeClient, s.op.metricsURL)
	if err != nil {
		return []string{fmt.Sprintf("scraping the operator: %v", err)}
	}
	if p := mismatch(fams, ms, cells, -1); p != "" {
		problems = append(problems, "/metrics: "+p)
	}
	for name := range s.metrics.goneNames() {
		if scrape.Samples(fams, name) != nil {
			problems = append(problems, fmt.Sprintf("/metrics still shows %s, deleted or renamed", name))
		}
	}

	s.otlp.update()
	s.otlp.mu.Lock()
	for _, b := range ms {
		m, ok := s.otlp.latest[b.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("OTLP: no push of %s yet", b.name))
			continue
		}
		got := map[string]float64{}
		for _, p := range m.Points {
			got[b.key(p.Attributes)] += float64(p.Value)
		}
		if want := b.expected(cells); !equalSeries(got, want) {
			problems = append(problems, fmt.Sprintf("OTLP: last push of %s = %s, want %s", b.name, render(got), render(want)))
		}
	}
	s.otlp.mu.Unlock()

	list := &v1alpha1.MetricList{}
	if err := s.h.c.List(ctx, list, client.InNamespace(metricsNamespace)); err != nil {
		return append(problems, fmt.Sprintf("listing Metrics: %v", err))
	}
	byName := map[string]*v1alpha1.Metric{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	for _, m := range live {
		obj := byName[m.obj]
		if obj == nil {
			problems = append(problems, fmt.Sprintf("Metric %s is missing", m.obj))
			continue
		}
		ready := false
		for _, c := range obj.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady && c.Status == "True" && c.ObservedGeneration == obj.Generation {
				ready = true
			}
		}
		if !ready || obj.Status.ObservedGeneration != obj.Generation || obj.Status.Mode != m.statusMode() {
			problems = append(problems, fmt.Sprintf("Metric %s: status not Ready for generation %d in mode %s (observed generation %d, mode %s, conditions %v)",
				m.obj, obj.Generation, m.statusMode(), obj.Status.ObservedGeneration, obj.Status.Mode, obj.Status.Conditions))
		}
	}
	return problems
}

// effective is when the operator could first have seen a change made at
// t: when its API server was down then, when that answered again.
func (s *soak) effective(t time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.apiOutages {
		if !t.Before(o.from) && (o.to.IsZero() || t.Before(o.to)) {
			return o.to
		}
	}
	return t
}

// ghosts lists the deleted or renamed metric names the receiver got a
// point of more than ghostGrace after the operator could know, and the
// longest time after that any point of one arrived.
func (s *soak) ghosts() (failures []string, lag time.Duration) {
	s.otlp.update()
	s.otlp.mu.Lock()
	defer s.otlp.mu.Unlock()
	for name, at := range s.metrics.goneNames() {
		last, ok := s.otlp.lastAt[name]
		eff := s.effective(at)
		if !ok || !last.After(eff) {
			continue
		}
		lag = max(lag, last.Sub(eff))
		if last.Sub(eff) > ghostGrace {
			failures = append(failures, fmt.Sprintf("OTLP: a point of %s arrived at %s, %s after it was deleted or renamed (at %s; the operator could know at %s)",
				name, last.Format(clock), fmtDuration(last.Sub(eff)), at.Format(clock), eff.Format(clock)))
		}
	}
	return failures, lag
}

// clock formats times in failures, to find them in the operator's log.
const clock = "15:04:05.000"

// soakSnapshot is the operator's state at one quiet moment.
type soakSnapshot struct {
	at          time.Time
	goroutines  float64
	heapInuse   float64                    // after a forced GC
	informers   float64                    // metrics_operator_informers_active
	tracked     float64                    // metrics_operator_tracked_metrics, all modes
	userSeries  int                        // samples of the soak's metric families
	modelSeries int                        // what the model says userSeries must be
	otherSeries int                        // every other family's series
	series      map[string]map[string]bool // label sets of the other families
	rss         int64
	apiWatches  float64 // WATCH requests open at the operator's API server
	// goroutineDump is pprof's goroutine profile (debug=1).
	goroutineDump string
}

func (s *soak) snapshot(ctx context.Context, label string) (snap *soakSnapshot, err error) {
	snap = &soakSnapshot{at: time.Now(), series: map[string]map[string]bool{}}
	// The heap profile with gc=1 runs a garbage collection first: the
	// heap after it is what is live, not what the last cycle left.
	var heap string
	for range 2 {
		if heap, err = s.get(ctx, s.pprof+"/heap?gc=1"); err != nil {
			return nil, err
		}
	}
	// `go tool pprof -base` of two of these says what grew.
	if err := os.WriteFile(filepath.Join(s.cfg.workDir, "soak-heap-"+label+".pb.gz"), []byte(heap), 0o644); err != nil {
		return nil, err
	}
	fams, _, err := fetch(ctx, scrapeClient, s.op.metricsURL)
	if err != nil {
		return nil, err
	}
	snap.goroutines, _ = sum(fams, "go_goroutines", nil)
	snap.heapInuse, _ = sum(fams, "go_memstats_heap_inuse_bytes", nil)
	snap.informers, _ = sum(fams, "metrics_operator_informers_active", nil)
	snap.tracked, _ = sum(fams, "metrics_operator_tracked_metrics", nil)
	for name, f := range fams {
		if strings.HasPrefix(name, "soak_") {
			snap.userSeries += len(f.Metric)
		} else {
			snap.otherSeries += len(f.Metric)
			sets := map[string]bool{}
			for _, m := range f.Metric {
				pairs := make([]string, 0, len(m.Label))
				for _, l := range m.Label {
					pairs = append(pairs, l.GetName()+"="+l.GetValue())
				}
				sets["{"+strings.Join(pairs, ",")+"}"] = true
			}
			snap.series[name] = sets
		}
	}
	cells := s.churn.cells(s.h.model.cells())
	for _, m := range s.metrics.snapshot() {
		snap.modelSeries += len(m.bench().expected(cells))
	}
	if snap.rss, _, err = s.op.p.Memory(); err != nil {
		return nil, err
	}
	api, err := s.apiMet.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	for _, v := range api.watches {
		snap.apiWatches += v
	}
	if snap.goroutineDump, err = s.get(ctx, s.pprof+"/goroutine?debug=1"); err != nil {
		return nil, err
	}
	path := filepath.Join(s.cfg.workDir, "soak-goroutines-"+label+".txt")
	if err := os.WriteFile(path, []byte(snap.goroutineDump), 0o644); err != nil {
		return nil, err
	}
	return snap, nil
}

func (s *soak) get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

func (snap *soakSnapshot) summary() string {
	return fmt.Sprintf("%g goroutines, heap in use %s after GC, RSS %s, %g watches, %g tracked metrics, %d + %d series, %g WATCH requests at the API server",
		snap.goroutines, fmtMiB(snap.heapInuse), fmtMiB(float64(snap.rss)), snap.informers, snap.tracked,
		snap.userSeries, snap.otherSeries, snap.apiWatches)
}

// What "back at the baseline" allows; docs/reliability.md says why.
const (
	goroutineSlack   = 10
	heapSlack        = 10 << 20 // bytes, or heapRatio of the baseline if more
	heapRatio        = 1.25
	otherSeriesSlack = 20
)

// row is one line of the baseline-versus-end table.
type row struct {
	name, base, end, allowed string
	ok                       bool
}

func compare(base, end *soakSnapshot) []row {
	mib := func(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
	heapMax := math.Max(base.heapInuse*heapRatio, base.heapInuse+heapSlack)
	return []row{
		{"goroutines (`go_goroutines`)", fmt.Sprint(base.goroutines), fmt.Sprint(end.goroutines),
			fmt.Sprintf("≤ baseline + %d", goroutineSlack), end.goroutines <= base.goroutines+goroutineSlack},
		{"watches (`metrics_operator_informers_active`)", fmt.Sprint(base.informers), fmt.Sprint(end.informers),
			"= baseline", end.informers == base.informers},
		{"WATCH requests open at the operator's kube-apiserver", fmt.Sprint(base.apiWatches), fmt.Sprint(end.apiWatches),
			"= baseline", end.apiWatches == base.apiWatches},
		{"`metrics_operator_tracked_metrics`", fmt.Sprint(base.tracked), fmt.Sprint(end.tracked),
			"= baseline", end.tracked == base.tracked},
		{"series of the soak's metrics on `/metrics`", fmt.Sprint(base.userSeries), fmt.Sprint(end.userSeries),
			fmt.Sprintf("= model (%d, %d)", base.modelSeries, end.modelSeries),
			base.userSeries == base.modelSeries && end.userSeries == end.modelSeries},
		{"other series on `/metrics` (the operator's own)", fmt.Sprint(base.otherSeries), fmt.Sprint(end.otherSeries),
			fmt.Sprintf("≤ baseline + %d", otherSeriesSlack), end.otherSeries <= base.otherSeries+otherSeriesSlack},
		{"heap in use after a forced GC (`go_memstats_heap_inuse_bytes`)", mib(base.heapInuse), mib(end.heapInuse),
			fmt.Sprintf("≤ %s (max of ×%.2f, +%d MiB)", mib(heapMax), heapRatio, heapSlack>>20), end.heapInuse <= heapMax},
		{"RSS (VmRSS; for information)", mib(float64(base.rss)), mib(float64(end.rss)), "—", true},
	}
}

func rowsOK(rows []row) bool {
	for _, r := range rows {
		if !r.ok {
			return false
		}
	}
	return true
}

// report renders the run as Markdown.
func (s *soak) report(rows []row, settled, lag time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Soak of %s on %s (%d CPUs), commit %s, %s UTC: %d ConfigMaps relabelled at %d/s, %d more created and deleted at %g/s; "+
		"a Metric operation every %s on average; `--min-export-interval %s`, `--export-backoff-max %s`, polling interval %s.\n\n",
		s.cfg.soak, s.h.info.CPUModel, s.h.info.CPUs, s.h.info.Commit, time.Now().UTC().Format("2006-01-02 15:04"),
		s.cfg.objects, s.cfg.writesPerSecond, extraObjects, churnPerSecond, metricOpEvery, s.cfg.minExportInterval,
		soakBackoffMax, s.cfg.pollInterval)
	ops := s.metrics.opCounts()
	keys := make([]string, 0, len(ops))
	for k := range ops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", ops[k], k)
	}
	fmt.Fprintf(&b, "- Metric operations: %s.\n", strings.Join(parts, ", "))
	s.mu.Lock()
	for _, o := range s.apiOutages {
		fmt.Fprintf(&b, "- kube-apiserver stopped, then ready again %s later.\n", fmtDuration(o.to.Sub(o.from)))
	}
	flaps := map[string]int{}
	for _, o := range s.sinkFlaps {
		flaps[o.what]++
	}
	s.mu.Unlock()
	fmt.Fprintf(&b, "- DataSink down %d times for %s: %d with its receiver stopped, %d with its endpoint on a closed port.\n",
		flaps["receiver stopped"]+flaps["endpoint on a closed port"], sinkDown, flaps["receiver stopped"], flaps["endpoint on a closed port"])
	fmt.Fprintf(&b, "- Every live metric right on `/metrics`, in its last OTLP push and in its status %s after the changes stopped; "+
		"the last point of a deleted or renamed metric arrived at most %s after the operator could know (allowed %s).\n\n",
		fmtDuration(settled), fmtDuration(lag), fmtDuration(ghostGrace))
	b.WriteString("| | baseline | end | allowed | |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		mark := "ok"
		if !r.ok {
			mark = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.name, r.base, r.end, r.allowed, mark)
	}
	return b.String()
}

// goroutineGrowth compares two goroutine profiles (debug=1) and lists
// the stacks that have more goroutines in b.
func goroutineGrowth(a, b string) string {
	ca, cb := goroutineCounts(a), goroutineCounts(b)
	type grown struct {
		stack string
		n     int
	}
	var out []grown
	for stack, n := range cb {
		if d := n - ca[stack]; d > 0 {
			out = append(out, grown{stack, d})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n > out[j].n })
	var sb strings.Builder
	for _, g := range out {
		fmt.Fprintf(&sb, "+%d\n%s\n", g.n, g.stack)
	}
	return sb.String()
}

// goroutineCounts reads a debug=1 goroutine profile: "N @ pcs" lines, each
// followed by its stack ("#\tpc\tfunc+off\tfile:line").
func goroutineCounts(profile string) map[string]int {
	out := map[string]int{}
	var n int
	var stack []string
	flush := func() {
		if n > 0 {
			out[strings.Join(stack, "\n")] += n
		}
		n, stack = 0, nil
	}
	sc := bufio.NewScanner(strings.NewReader(profile))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			if f := strings.Fields(line); len(f) >= 3 {
				stack = append(stack, "    "+f[2])
			}
		case strings.Contains(line, " @ "):
			flush()
			_, _ = fmt.Sscanf(line, "%d @", &n)
		case strings.TrimSpace(line) == "":
			flush()
		}
	}
	flush()
	return out
}

// seriesGrowth lists, by family, the label sets b has and a has not.
func seriesGrowth(a, b map[string]map[string]bool) map[string][]string {
	out := map[string][]string{}
	for name, sets := range b {
		for set := range sets {
			if !a[name][set] {
				out[name] = append(out[name], set)
			}
		}
		sort.Strings(out[name])
	}
	return out
}
