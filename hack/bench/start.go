package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
		for deadline := time.Now().Add(10 * time.Second); ctx.Err() == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			resp, err := http.Get(url)
			if err != nil {
				continue
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil {
				err = os.WriteFile(path, b, 0o644)
			}
			if err != nil {
				logf("  profile: %v", err)
			} else {
				logf("  CPU profile of the first %ds: %s", profileSeconds, path)
			}
			return
		}
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
	pagesPerPass := float64((cfg.objects + 999) / 1000)
	fmt.Fprintf(&b, "Start with N = %d ConfigMaps already present (a LIST pass is about %g pages)\n\n", cfg.objects, pagesPerPass)
	b.WriteString("| operator | mode | M | correct values after | LIST configmaps pages (≈ passes) | join LISTs | operator CPU | peak RSS | load (1 min) |\n|---|---|---|---|---|---|---|---|---|\n")
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
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %g (%.1f) | %g | %.2f s | %s | %.2f |\n", r.operator, r.mode, r.m, fmtReady(r.ready, r.readyOK),
			r.startLists, r.startLists/pagesPerPass, r.joinLists, r.cpu, fmtMiB(float64(r.peakRSS)), r.load)
	}
	for _, g := range order {
		rs := byGroup[g]
		ready := make([]time.Duration, len(rs))
		rss, lists, joins, load, cpu := make([]float64, len(rs)), make([]float64, len(rs)), make([]float64, len(rs)), make([]float64, len(rs)), make([]float64, len(rs))
		ok := true
		for i, r := range rs {
			ready[i], rss[i], lists[i], joins[i], load[i], cpu[i] = r.ready, float64(r.peakRSS), r.startLists, r.joinLists, r.load, r.cpu
			ok = ok && r.readyOK
		}
		slices.Sort(ready)
		fmt.Fprintf(&b, "| **median of %d**: %s | %s | %d | %s | %g (%.1f) | %g | %.2f s | %s | %.2f |\n", len(rs), g.operator, g.mode, g.m,
			fmtReady(ready[len(ready)/2], ok), median(lists), median(lists)/pagesPerPass, median(joins), median(cpu), fmtMiB(median(rss)), median(load))
	}
	return b.String()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
