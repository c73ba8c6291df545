package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// profileSeconds is how long --start-profile profiles an operator from
// its start: longer than its start takes on this machine.
const profileSeconds = 20

// profileStart returns the operator arguments that serve pprof, and a
// function that waits for the CPU profile of the operator's first
// profileSeconds, requested as soon as it answers, and writes it to
// --start-profile/<name>-<n>.pprof.
func (h *harness) profileStart(ctx context.Context, name string) (wait func(), args []string) {
	addr, err := testenv.FreeAddr()
	if err != nil {
		logf("  no profile: %v", err)
		return nil, nil
	}
	if err := os.MkdirAll(h.cfg.startProfile, 0o755); err != nil {
		logf("  no profile: %v", err)
		return nil, nil
	}
	path := filepath.Join(h.cfg.startProfile, fmt.Sprintf("%s-%s-%d.pprof", filepath.Base(h.cfg.operatorBin), name, time.Now().Unix()))
	var wg sync.WaitGroup
	wg.Go(func() {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, profileSeconds)
		// Asked again until the operator answers.
		var err error
		for deadline := time.Now().Add(10 * time.Second); ctx.Err() == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if err = testenv.SaveProfile(ctx, url, path); err == nil {
				logf("  CPU profile of the first %ds: %s", profileSeconds, path)
				return
			}
		}
		logf("  profile: %v", err)
	})
	return wg.Wait, []string{"--pprof-bind-address", addr}
}

// measureStart completes r for --start-only: what the start cost, read
// once the values are right.
func (h *harness) measureStart(ctx context.Context, op *operatorProc, r *result) {
	r.load = loadAverage()
	if s, err := snapshotOperator(ctx, op); err != nil {
		r.errorf("operator metrics: %v", err)
	} else {
		r.joinLists, r.informers, r.cpu = s.joinLists, s.informers, s.cpu
	}
	if rss, err := op.peakRSS(); err != nil {
		r.errorf("peak RSS: %v", err)
	} else {
		r.peakRSS = rss
	}
}

// startTable prints the --start-only runs, one row each, and the median
// of each mode and M. A LIST pass of N objects is ceil(N/1000) + 1 pages
// at the operator's default page size (the API server sends a last, empty
// continue only when N is a multiple of 1000); the table gives the pages
// and the passes they make.
func startTable(cfg config, results []*result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Start with N = %d ConfigMaps already present (a LIST pass is about %g pages, a streamed list one request)\n\n", cfg.objects, pagesPerPass(cfg.objects))
	b.WriteString("| operator | mode | M | correct values after | LIST pages + streamed lists of configmaps (≈ passes) | join LISTs | CPU | peak RSS | load (1 min) |\n|---|---|---|---|---|---|---|---|---|\n")
	type group struct {
		operator, mode string
		m              int
	}
	var order []group
	byGroup := map[group][]*result{}
	for _, r := range results {
		g := group{r.operator, r.mode, r.m}
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], r)
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %g + %g (%.1f) | %g | %.2f s | %s | %.2f |\n", r.operator, r.mode, r.m, fmtReady(r.ready, r.readyOK),
			r.startLists, r.startStreams, r.passes(cfg.objects), r.joinLists, r.cpu, fmtMiB(float64(r.peakRSS)), r.load)
	}
	for _, g := range order {
		rs := byGroup[g]
		ready := make([]time.Duration, len(rs))
		col := func(f func(*result) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return median(v)
		}
		ok := true
		for i, r := range rs {
			ready[i] = r.ready
			ok = ok && r.readyOK
		}
		slices.Sort(ready)
		fmt.Fprintf(&b, "| **median of %d**: %s | %s | %d | %s | %g + %g (%.1f) | %g | %.2f s | %s | %.2f |\n", len(rs), g.operator, g.mode, g.m,
			fmtReady(ready[len(ready)/2], ok), col(func(r *result) float64 { return r.startLists }), col(func(r *result) float64 { return r.startStreams }),
			col(func(r *result) float64 { return r.passes(cfg.objects) }), col(func(r *result) float64 { return r.joinLists }),
			col(func(r *result) float64 { return r.cpu }), fmtMiB(col(func(r *result) float64 { return float64(r.peakRSS) })),
			col(func(r *result) float64 { return r.load }))
	}
	return b.String()
}

// pagesPerPass is about how many LIST pages one pass over n objects reads
// at the operator's default page size.
func pagesPerPass(n int) float64 { return float64((n + 999) / 1000) }

// passes is how many times the start read every ConfigMap: LIST pages
// as passes, plus lists streamed as a watch's initial events.
func (r *result) passes(objects int) float64 {
	return r.startLists/pagesPerPass(objects) + r.startStreams
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// pprofArgs returns a free address and the operator arguments that serve
// pprof on it; none when no address is free.
func pprofArgs() (string, []string) {
	addr, err := testenv.FreeAddr()
	if err != nil {
		logf("  no profile: %v", err)
		return "", nil
	}
	return addr, []string{"--pprof-bind-address", addr}
}

// profileWindow starts a CPU profile of the operator serving pprof on
// addr, as long as the steady window, and returns a function that waits
// for it, then takes a heap profile, and writes both into
// --window-profile as <binary>-<name>-<unix>.{cpu,heap}.pprof.
func (h *harness) profileWindow(ctx context.Context, addr, name string) func() {
	if err := os.MkdirAll(h.cfg.windowProfile, 0o755); err != nil {
		logf("  no profile: %v", err)
		return nil
	}
	base := filepath.Join(h.cfg.windowProfile, fmt.Sprintf("%s-%s-%d", filepath.Base(h.cfg.operatorBin), name, time.Now().Unix()))
	save := func(url, path string) {
		if err := testenv.SaveProfile(ctx, url, path); err != nil {
			logf("  profile: %v", err)
			return
		}
		logf("  profile of the window: %s", path)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		seconds := max(1, int(h.cfg.duration.Round(time.Second)/time.Second))
		save(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), base+".cpu.pprof")
	})
	return func() {
		wg.Wait()
		save(fmt.Sprintf("http://%s/debug/pprof/heap", addr), base+".heap.pprof")
	}
}
