// Command bench measures the operator (the real binary, bin/metrics-operator)
// against a local control plane, polling and event-driven side by side:
// time to correct values, write → /metrics and write → OTLP latency while
// background writes go on, API server requests and open watches, peak RSS,
// Go heap and CPU. It prints a Markdown table and, with --out, merges the
// run into docs/benchmarks.md (one section per object count).
//
// `make bench` and `make bench-quick` run it. Everything it starts (control
// plane, OTLP receiver, operator processes) listens on 127.0.0.1 only and is
// stopped at the end or on Ctrl-C; every phase is bounded by a timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Modes.
const (
	modePolling     = "polling"
	modeEventDriven = "event-driven"
)

// config is the benchmark's parameters (flags).
type config struct {
	operatorBin       string
	workDir           string
	objects           int
	writesPerSecond   int
	writers           int
	metrics           []int
	modes             []string
	out               string
	duration          time.Duration
	warmup            time.Duration
	probes            int
	pollInterval      time.Duration
	minExportInterval time.Duration
	statusInterval    time.Duration
	readyTimeout      time.Duration
	settleTimeout     time.Duration
	pushAll           bool
	// soak, when positive, runs the soak (soak.go) for this long instead
	// of the benchmark.
	soak time.Duration
	// startOnly measures only each scenario's start (operator start →
	// correct values, its LISTs, peak RSS) and prints it, writing nothing.
	startOnly bool
	// startBaseline, with startOnly, is a second operator binary run
	// before each run of operatorBin, for a comparison under the same load.
	startBaseline string
	// startProfile, with startOnly, is a directory for a CPU profile of
	// each operator's first seconds.
	startProfile string
	// startPeer, with startOnly, is a kube-state-metrics binary started
	// before each event-driven operator run over the same ConfigMaps
	// (peer.go), for a comparison of full syncs under the same load.
	startPeer string
	// windowProfile is a directory for a CPU profile of each operator
	// over its steady window and a heap profile at the window's end.
	windowProfile string
}

func main() {
	var (
		cfg     config
		metrics string
		modes   string
	)
	flag.StringVar(&cfg.operatorBin, "operator", "bin/metrics-operator", "operator binary to run (`make build`)")
	flag.StringVar(&cfg.workDir, "dir", "bin/bench-work", "where the kubeconfig and the operators' logs are written")
	flag.IntVar(&cfg.objects, "objects", 10000, "number of target ConfigMaps (N)")
	flag.IntVar(&cfg.writesPerSecond, "writes-per-second", 500, "background writes per second to the target ConfigMaps during the steady window (W)")
	flag.IntVar(&cfg.writers, "writers", 32, "concurrent background writers (16 saturated at about 400 writes/s on two cores)")
	flag.StringVar(&metrics, "metrics", "1,10,100,1000", "comma-separated numbers of metrics (M) on the ConfigMaps, one scenario per number and mode")
	flag.StringVar(&modes, "modes", modePolling+","+modeEventDriven, "comma-separated modes to run: polling, event-driven")
	flag.StringVar(&cfg.out, "out", "docs/benchmarks.md", "Markdown file to merge this run into (a section keyed by --objects); empty: print only")
	flag.DurationVar(&cfg.duration, "duration", 60*time.Second, "length of each scenario's steady window")
	flag.DurationVar(&cfg.warmup, "warmup", 5*time.Second, "background writes before the steady window starts")
	flag.IntVar(&cfg.probes, "probes", 100, "probe writes per steady window (latency samples)")
	flag.DurationVar(&cfg.pollInterval, "poll-interval", 10*time.Second, "spec.interval of polling metrics (at least 10s)")
	flag.DurationVar(&cfg.minExportInterval, "min-export-interval", time.Second, "the operator's --min-export-interval")
	flag.DurationVar(&cfg.statusInterval, "status-update-interval", 30*time.Second, "the operator's --status-update-interval (its default: 30s)")
	flag.DurationVar(&cfg.readyTimeout, "ready-timeout", 180*time.Second, "longest wait for correct values after the operator starts, and after the writes stop")
	flag.DurationVar(&cfg.settleTimeout, "settle-timeout", 30*time.Second, "longest wait, after the window, for the last probe write to show")
	flag.BoolVar(&cfg.pushAll, "push-all", false, "also push the M metrics over OTLP (a DataSink named default); by default only the probe pushes")
	flag.DurationVar(&cfg.soak, "soak", 0, "run the soak for this long instead of the benchmark (`make soak`): Metrics created, edited and deleted, "+
		"objects churned, the DataSink flapping and the API server restarted once; at the end the operator must be back at its baseline "+
		"and every value right. It uses --objects (default 2000 here), --writes-per-second (default 20 here), --writers, --poll-interval, --min-export-interval")
	flag.BoolVar(&cfg.startOnly, "start-only", false, "measure only each scenario's start (time to correct values, LIST requests, join LISTs, peak RSS) and print it; "+
		"repeat a number in --metrics to run it several times (--metrics=10,10,10); --out is not written")
	flag.StringVar(&cfg.startBaseline, "start-baseline", "", "with --start-only: another operator binary (say, main's), or a comma-separated list of them, each run before each run of --operator, for a comparison under the same load")
	flag.StringVar(&cfg.startProfile, "start-profile", "", "with --start-only: write a CPU profile of each operator's first 20 seconds into this directory")
	flag.StringVar(&cfg.startPeer, "start-peer", "", "with --start-only: a kube-state-metrics binary (built outside this repository) run before each event-driven run, "+
		"timed from its start until it serves one kube_configmap_info series per ConfigMap")
	flag.StringVar(&cfg.windowProfile, "window-profile", "", "write a CPU profile of each operator over its steady window, and a heap profile at the window's end, into this directory")
	flag.Parse()
	if cfg.soak > 0 {
		soakDefaults(&cfg)
	}

	var errs []error
	var err error
	if cfg.metrics, err = parseInts(metrics); err != nil {
		errs = append(errs, fmt.Errorf("--metrics: %w", err))
	}
	for _, m := range strings.Split(modes, ",") {
		m = strings.TrimSpace(m)
		switch m {
		case modePolling, modeEventDriven:
			cfg.modes = append(cfg.modes, m)
		case "":
		default:
			errs = append(errs, fmt.Errorf("--modes: unknown mode %q (polling, event-driven)", m))
		}
	}
	if len(cfg.modes) == 0 {
		errs = append(errs, errors.New("--modes: no mode given"))
	}
	if cfg.objects < 1 || cfg.writesPerSecond < 0 || cfg.writers < 1 || cfg.probes < 1 || cfg.duration <= 0 {
		errs = append(errs, errors.New("--objects, --writers, --probes and --duration must be positive, --writes-per-second not negative"))
	}
	if cfg.pollInterval < 10*time.Second {
		errs = append(errs, errors.New("--poll-interval must be at least 10s (the API's minimum)"))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if cfg.soak > 0 {
		err = runSoak(ctx, cfg)
	} else {
		err = run(ctx, cfg)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no number given")
	}
	return out, nil
}

// logf prints progress to stderr with the time since the start.
var started = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

// prepare checks that the operator binary is there and starts the
// harness.
func prepare(ctx context.Context, cfg config) (*harness, error) {
	if _, err := os.Stat(cfg.operatorBin); err != nil {
		return nil, fmt.Errorf("operator binary %s: %w (run `make build`)", cfg.operatorBin, err)
	}
	if err := os.MkdirAll(cfg.workDir, 0o755); err != nil {
		return nil, err
	}
	return startHarness(ctx, cfg)
}

func run(ctx context.Context, cfg config) error {
	h, err := prepare(ctx, cfg)
	if err != nil {
		return err
	}
	defer h.stop()

	bins := []string{cfg.operatorBin}
	if cfg.startOnly && cfg.startBaseline != "" {
		bins = append(strings.Split(cfg.startBaseline, ","), bins...)
	}
	var results []*result
	for _, m := range cfg.metrics {
		for _, mode := range cfg.modes {
			if cfg.startOnly && cfg.startPeer != "" && mode == modeEventDriven {
				results = append(results, h.runPeerStart(ctx))
			}
			for _, bin := range bins {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				h.cfg.operatorBin = bin
				r := h.runScenario(ctx, mode, m)
				results = append(results, r)
				logf("scenario %s M=%d (%s) done: %s", mode, m, bin, r.summary())
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if cfg.startOnly {
		fmt.Println(startTable(cfg, results))
		return nil
	}
	rep := &report{cfg: cfg, env: h.info, results: results, wall: time.Since(started)}
	section := rep.section()
	fmt.Println()
	fmt.Println(section)
	if cfg.out != "" {
		if err := mergeInto(cfg.out, cfg.objects, section); err != nil {
			return fmt.Errorf("writing %s: %w", cfg.out, err)
		}
		logf("wrote %s (section for %d objects)", cfg.out, cfg.objects)
		path, err := writeData(filepath.Join(filepath.Dir(cfg.out), "bench"), rep.data(time.Now()))
		if err != nil {
			return fmt.Errorf("writing the run's data: %w", err)
		}
		logf("wrote %s (plots: make plots)", path)
	}
	return nil
}
