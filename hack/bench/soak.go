package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// The soak (--soak D) runs the operator binary for D against a real
// control plane and OTLP receiver while everything around it changes:
// Metrics are created, edited (selector, projections, mode, spec.name)
// and deleted, ConfigMaps are relabelled, created and deleted, the
// DataSink flaps (its receiver stopped, or its endpoint moved to a closed
// port, and back) and the kube-apiserver the operator talks to is
// restarted once. The operator's baseline is taken after a warm-up with
// only the baseline metrics present; at the end, with only those left
// again and everything quiet, it must be back at it (soakTolerances) and
// every value on /metrics and in the last OTLP push must match the model.
const (
	// extraObjects are created and deleted (half exist at any time)
	// beside the --objects ones, which are relabelled.
	extraObjects = 200
	// churnPerSecond is the rate of those creates and deletes.
	churnPerSecond = 4.0
	// metricOpEvery is the mean time between two Metric operations.
	metricOpEvery = 2 * time.Second
	// The DataSink is down for sinkDown every sinkFlapEvery, the first
	// time sinkFirstFlap into the soak.
	sinkFirstFlap = 45 * time.Second
	sinkFlapEvery = 60 * time.Second
	sinkDown      = 15 * time.Second
	// apiDown is how long the API server is stopped, half way through.
	apiDown = 20 * time.Second
	// soakBackoffMax is the operator's --export-backoff-max: a sink that
	// comes back gets current values within it (the default, 5 min,
	// would make the final wait that long).
	soakBackoffMax = 30 * time.Second
	// quiet is how long nothing changes before the end snapshot.
	quiet = 15 * time.Second
	// ghostGrace is how long after the operator could see a delete or
	// rename a push may still carry the old name (a push in flight).
	ghostGrace = 10 * time.Second
)

// soakDefaults gives the flags the benchmark shares with the soak the
// soak's defaults, unless they were set.
func soakDefaults(cfg *config) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["objects"] {
		cfg.objects = 2000
	}
	if !set["writes-per-second"] {
		cfg.writesPerSecond = 20
	}
	if !set["writers"] {
		cfg.writers = 4
	}
	if !set["warmup"] {
		cfg.warmup = 30 * time.Second
	}
}

// soak is one soak run.
type soak struct {
	cfg     config
	h       *harness
	api     *testenv.APIServer
	apiMet  *apiScraper
	op      *operatorProc
	pprof   string
	metrics *metricSet
	churn   *churner
	otlp    *otlpTracker

	mu         sync.Mutex
	apiOutages []outage // the operator's API server down: stop → ready again
	sinkFlaps  []outage
	opErrors   []string
}

// outage is a period something was down; to is zero while it lasts.
type outage struct {
	what     string
	from, to time.Time
}

func runSoak(ctx context.Context, cfg config) error {
	h, err := prepare(ctx, cfg)
	if err != nil {
		return err
	}
	defer h.stop()
	s := &soak{cfg: cfg, h: h, metrics: newMetricSet(), otlp: newOTLPTracker(h.sink)}
	if err := s.setUp(ctx); err != nil {
		return err
	}
	defer s.op.stop()
	return s.run(ctx)
}

// setUp starts the API server the operator talks to, the baseline
// metrics, the churned objects and the operator.
func (s *soak) setUp(ctx context.Context) error {
	dir, err := filepath.Abs(filepath.Join(s.cfg.workDir, "soak-apiserver"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The operator talks to a kube-apiserver of its own on the same etcd:
	// it can be restarted while the soak writes through the first one.
	logf("starting the operator's kube-apiserver")
	if s.api, err = s.h.env.StartAPIServer(dir, nil); err != nil {
		return err
	}
	if s.h.kubeconfig, err = s.api.WriteKubeconfig(s.h.env, dir, "soak-operator"); err != nil {
		return err
	}
	apiCfg := rest.CopyConfig(s.h.restCfg)
	apiCfg.Host = s.api.Host
	if s.apiMet, err = newAPIScraper(apiCfg); err != nil {
		return err
	}

	s.churn = newChurner(s.h, s.cfg.objects, extraObjects)
	for j := 0; j < extraObjects; j += 2 {
		if err := s.churn.flip(ctx, j); err != nil {
			return fmt.Errorf("creating the churned objects: %w", err)
		}
	}
	// One baseline metric per selector shape, both modes, every
	// projection set but the empty one.
	for i, mode := range []string{modeEventDriven, modePolling, modeEventDriven, modePolling} {
		m := &soakMetric{obj: fmt.Sprintf("soak-base-%d", i), name: fmt.Sprintf("soak_base_%d", i),
			shape: i, proj: i % 3, mode: mode, baseline: true}
		if err := s.createMetric(ctx, m); err != nil {
			return err
		}
	}
	pprofAddr, err := testenv.FreeAddr()
	if err != nil {
		return err
	}
	s.pprof = "http://" + pprofAddr + "/debug/pprof"
	s.op, err = s.h.startOperator("soak", "--pprof-bind-address", pprofAddr,
		"--export-backoff-max", soakBackoffMax.String())
	return err
}

func (s *soak) run(ctx context.Context) error {
	took, problems := s.waitRight(ctx, s.cfg.readyTimeout)
	if len(problems) > 0 {
		return fmt.Errorf("the baseline metrics are not right %s after the operator started: %v", took, problems)
	}
	logf("baseline metrics right on /metrics and OTLP %s after the operator started", fmtDuration(time.Since(s.op.started)))

	// Warm-up: the same writes as in the soak, with the baseline metrics
	// only, so that what grows on first use (connections, pools) is in
	// the baseline.
	logf("warm-up: %s of writes and churn", s.cfg.warmup)
	w := s.h.startWriters(ctx, s.cfg.writesPerSecond)
	s.churn.start(ctx, churnPerSecond)
	sleepCtx(ctx, s.cfg.warmup)
	if err := errors.Join(w.stop(ctx), s.churn.stop(ctx)); err != nil {
		return err
	}
	if took, problems = s.waitRight(ctx, s.cfg.readyTimeout); len(problems) > 0 {
		return fmt.Errorf("the baseline metrics are not right %s after the warm-up: %v", took, problems)
	}
	sleepCtx(ctx, quiet)
	base, err := s.snapshot(ctx, "baseline")
	if err != nil {
		return err
	}
	logf("baseline: %s", base.summary())

	s.soakPhase(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	var failures []string
	failures = append(failures, s.opErrors...)
	// Every metric still live, dynamic ones included, right everywhere.
	live := len(s.metrics.snapshot())
	took, problems = s.waitRight(ctx, s.cfg.readyTimeout)
	logf("after the soak: %d live metrics right on /metrics, OTLP and status %s after the writes stopped", live, fmtReady(took, len(problems) == 0))
	failures = append(failures, problems...)
	settled := took

	// Back to the baseline metrics only.
	for _, m := range s.metrics.dynamic() {
		if err := s.h.c.Delete(ctx, m.object(s.cfg.pollInterval)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting Metric %s: %w", m.obj, err)
		}
		s.metrics.mu.Lock()
		delete(s.metrics.live, m.obj)
		s.metrics.gone[m.name] = time.Now()
		s.metrics.mu.Unlock()
	}
	took, problems = s.waitRight(ctx, s.cfg.readyTimeout)
	logf("dynamic metrics deleted; the rest right %s later", fmtReady(took, len(problems) == 0))
	failures = append(failures, problems...)
	sleepCtx(ctx, quiet)
	end, err := s.snapshot(ctx, "end")
	if err != nil {
		return err
	}
	logf("end: %s", end.summary())
	if _, problems = s.waitRight(ctx, 0); len(problems) > 0 {
		failures = append(failures, problems...)
	}
	ghosts, lag := s.ghosts()
	failures = append(failures, ghosts...)
	if s.op.exited() {
		failures = append(failures, "the operator exited; see "+s.op.logPath)
	}

	rows := compare(base, end)
	for _, r := range rows {
		if !r.ok {
			failures = append(failures, fmt.Sprintf("%s: baseline %s, end %s, allowed %s", r.name, r.base, r.end, r.allowed))
		}
	}
	fmt.Println()
	fmt.Println(s.report(rows, settled, lag))
	logf("series of the operator's own that grew: %v", seriesGrowth(base.series, end.series))
	if !rowsOK(rows) {
		logf("goroutines that grew:\n%s", goroutineGrowth(base.goroutineDump, end.goroutineDump))
	}
	if len(failures) > 0 {
		for _, f := range failures {
			logf("FAIL: %s", f)
		}
		return fmt.Errorf("the soak failed: %d problems", len(failures))
	}
	logf("the soak passed")
	return nil
}

// soakPhase changes everything for cfg.soak, then stops the changes and
// leaves the API server and the sink up.
func (s *soak) soakPhase(ctx context.Context) {
	logf("soak: %s", s.cfg.soak)
	start := time.Now()
	end := start.Add(s.cfg.soak)
	w := s.h.startWriters(ctx, s.cfg.writesPerSecond)
	s.churn.start(ctx, churnPerSecond)
	phase, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { s.metricOps(phase) })
	wg.Go(func() { s.flapSink(phase, start) })
	wg.Go(func() { s.restartAPIServer(phase, start.Add(s.cfg.soak/2)) })
	wg.Go(func() { s.progress(phase, start, w) })
	wg.Wait()
	if err := errors.Join(w.stop(ctx), s.churn.stop(ctx)); err != nil {
		s.opError(err)
	}
	done, failed, dropped := w.counts()
	logf("soak done: %v Metric operations; %d relabels (%d failed, %d not started), %d creates and %d deletes of ConfigMaps (%d failed)",
		s.metrics.opCounts(), done, failed, dropped, s.churn.creates.Load(), s.churn.deletes.Load(), s.churn.failed.Load())
}

func (s *soak) metricOps(ctx context.Context) {
	for ctx.Err() == nil {
		sleepCtx(ctx, jitter(metricOpEvery))
		if ctx.Err() != nil {
			return
		}
		// An operation started runs to its end, so that the model stays
		// what the API server holds.
		if err := s.metricOp(context.WithoutCancel(ctx)); err != nil {
			s.opError(err)
		}
	}
}

func (s *soak) opError(err error) {
	logf("  %v", err)
	s.mu.Lock()
	s.opErrors = append(s.opErrors, err.Error())
	s.mu.Unlock()
}

// flapSink takes the DataSink down every sinkFlapEvery, in turn by
// stopping its receiver and by pointing it to a closed port, and brings
// it back after sinkDown. It is up when it returns.
func (s *soak) flapSink(ctx context.Context, start time.Time) {
	deadline, _ := ctx.Deadline()
	for n, at := 0, start.Add(sinkFirstFlap); at.Add(sinkDown + 10*time.Second).Before(deadline); n, at = n+1, at.Add(sinkFlapEvery) {
		sleepCtx(ctx, time.Until(at))
		if ctx.Err() != nil {
			return
		}
		o := outage{from: time.Now()}
		if n%2 == 0 {
			o.what = "receiver stopped"
			s.h.sink.Stop()
			sleepCtx(ctx, sinkDown)
			if err := s.h.sink.Reopen(); err != nil {
				s.opError(fmt.Errorf("restarting the OTLP receiver: %w", err))
			}
		} else {
			closed, err := testenv.FreeAddr()
			if err != nil {
				s.opError(err)
				continue
			}
			o.what = "endpoint on a closed port"
			if err := s.setSinkEndpoint(context.WithoutCancel(ctx), "http://"+closed+"/v1/metrics"); err != nil {
				s.opError(err)
				continue
			}
			sleepCtx(ctx, sinkDown)
			if err := s.setSinkEndpoint(context.WithoutCancel(ctx), s.h.sink.HTTPURL()); err != nil {
				s.opError(err)
			}
		}
		o.to = time.Now()
		logf("  DataSink down %s (%s)", fmtDuration(o.to.Sub(o.from)), o.what)
		s.mu.Lock()
		s.sinkFlaps = append(s.sinkFlaps, o)
		s.mu.Unlock()
	}
}

func (s *soak) setSinkEndpoint(ctx context.Context, endpoint string) error {
	ds := &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: sinkName, Namespace: metricsNamespace}}
	patch := fmt.Sprintf(`{"spec":{"connection":{"endpoint":%q}}}`, endpoint)
	if err := s.h.c.Patch(ctx, ds, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return fmt.Errorf("patching DataSink %s: %w", sinkName, err)
	}
	return nil
}

// restartAPIServer stops the operator's API server at `at` for apiDown
// and starts it again (whatever ctx says: it must be up at the end).
func (s *soak) restartAPIServer(ctx context.Context, at time.Time) {
	sleepCtx(ctx, time.Until(at))
	if ctx.Err() != nil {
		return
	}
	o := outage{what: "kube-apiserver", from: time.Now()}
	s.mu.Lock()
	s.apiOutages = append(s.apiOutages, o)
	s.mu.Unlock()
	logf("  stopping the operator's kube-apiserver for %s", apiDown)
	if err := s.api.Stop(); err != nil {
		s.opError(err)
	}
	time.Sleep(apiDown)
	if err := s.api.Start(); err != nil {
		s.opError(fmt.Errorf("restarting the API server: %w", err))
		return
	}
	s.mu.Lock()
	s.apiOutages[len(s.apiOutages)-1].to = time.Now()
	s.mu.Unlock()
	logf("  the operator's kube-apiserver is ready again after %s", fmtDuration(time.Since(o.from)))
}

// progress logs the operator's state every 30 s.
func (s *soak) progress(ctx context.Context, start time.Time, w *writers) {
	for ctx.Err() == nil {
		sleepCtx(ctx, 30*time.Second)
		if ctx.Err() != nil {
			return
		}
		fams, _, err := fetch(ctx, scrapeClient, s.op.metricsURL, "go_goroutines", "go_memstats_heap_inuse_bytes",
			"metrics_operator_informers_active", "metrics_operator_tracked_metrics")
		if err != nil {
			logf("  %s: scraping the operator: %v", fmtDuration(time.Since(start)), err)
			continue
		}
		g, _ := sum(fams, "go_goroutines", nil)
		heap, _ := sum(fams, "go_memstats_heap_inuse_bytes", nil)
		inf, _ := sum(fams, "metrics_operator_informers_active", nil)
		tr, _ := sum(fams, "metrics_operator_tracked_metrics", nil)
		done, _, _ := w.counts()
		logf("  %s: %d live metrics, ops %v, %d relabels; operator: %g goroutines, heap %s, %g watches, %g tracked",
			fmtDuration(time.Since(start)), len(s.metrics.snapshot()), s.metrics.opCounts(), done, g, fmtMiB(heap), inf, tr)
	}
}

// jitter returns d ± 50 %.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}
