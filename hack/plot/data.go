package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// run is the part of a hack/bench data file the plots use.
type run struct {
	Objects int        `json:"objects"`
	Run     string     `json:"run"`
	Commit  string     `json:"commit"`
	CPUs    int        `json:"cpus"`
	Results []scenario `json:"results"`
}

type scenario struct {
	Mode       string   `json:"mode"`
	Metrics    int      `json:"metrics"`
	MetricsP50 quantile `json:"metricsP50"`
	MetricsP99 quantile `json:"metricsP99"`
	CPUCores   float64  `json:"cpuCores"`
	PeakRSSMiB float64  `json:"peakRSSMiB"`
	Load       float64  `json:"load"`
}

// quantile is a latency in milliseconds; Censored: a lower bound (the
// write was never seen); Ms < 0: not measured.
type quantile struct {
	Ms       float64 `json:"ms"`
	Censored bool    `json:"censored"`
}

// readRuns reads every objects-*.json in dir, sorted by object count.
func readRuns(dir string) ([]run, error) {
	files, err := filepath.Glob(filepath.Join(dir, "objects-*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no objects-*.json in %s: run make bench first", dir)
	}
	var runs []run
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r run
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		runs = append(runs, r)
	}
	slices.SortFunc(runs, func(a, b run) int { return a.Objects - b.Objects })
	return runs, nil
}

// widest returns the run with the most distinct numbers of metrics (the
// larger object count on a tie).
func widest(runs []run) run {
	best, bestN := run{}, -1
	for _, r := range runs {
		if n := len(metricCounts(r)); n >= bestN {
			best, bestN = r, n
		}
	}
	return best
}

// metricCounts returns the run's numbers of metrics, ascending.
func metricCounts(r run) []int {
	var ms []int
	for _, s := range r.Results {
		if !slices.Contains(ms, s.Metrics) {
			ms = append(ms, s.Metrics)
		}
	}
	slices.Sort(ms)
	return ms
}

// sharedMetricCount returns the number of metrics the most runs measured
// (the smallest on a tie) and how many runs did.
func sharedMetricCount(runs []run) (m, n int) {
	count := map[int]int{}
	for _, r := range runs {
		for _, x := range metricCounts(r) {
			count[x]++
		}
	}
	for x, c := range count {
		if c > n || (c == n && x < m) {
			m, n = x, c
		}
	}
	return m, n
}

// find returns the scenario (mode, m) of r.
func find(r run, mode string, m int) (scenario, bool) {
	for _, s := range r.Results {
		if s.Mode == mode && s.Metrics == m {
			return s, true
		}
	}
	return scenario{}, false
}

// loadRange returns the lowest and highest machine load of r's
// scenarios; ok is false when the run did not record it.
func loadRange(r run) (lo, hi float64, ok bool) {
	for _, s := range r.Results {
		if s.Load <= 0 {
			continue
		}
		if !ok || s.Load < lo {
			lo = s.Load
		}
		if !ok || s.Load > hi {
			hi = s.Load
		}
		ok = true
	}
	return lo, hi, ok
}
