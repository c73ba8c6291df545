package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runData is one run's results as data, written beside the Markdown
// report (docs/bench/objects-N.json, replaced like the report's section
// for N) so that hack/plot can draw them without parsing Markdown.
// Durations are milliseconds, memory MiB; a censored quantile (a write
// never seen before the settle timeout) is marked, its value a lower
// bound.
type runData struct {
	Objects         int            `json:"objects"`
	Run             string         `json:"run"` // UTC, RFC 3339
	Commit          string         `json:"commit"`
	CPUs            int            `json:"cpus"`
	WritesPerSecond int            `json:"writesPerSecond"`
	Args            []string       `json:"args"`
	Results         []scenarioData `json:"results"`
}

// scenarioData is one (mode, M) of a run.
type scenarioData struct {
	Mode    string `json:"mode"`
	Metrics int    `json:"metrics"`
	// MetricsP50/P99 are write → /metrics, OTLPP50/P99 write → OTLP.
	MetricsP50 quantileData `json:"metricsP50"`
	MetricsP99 quantileData `json:"metricsP99"`
	OTLPP50    quantileData `json:"otlpP50"`
	OTLPP99    quantileData `json:"otlpP99"`
	// CPUCores is the operator's CPU in the steady window divided by the
	// window.
	CPUCores float64 `json:"cpuCores"`
	// CPUPer1000Events is CPU seconds per 1,000 applied events; 0 when
	// no events were applied (polling).
	CPUPer1000Events float64 `json:"cpuPer1000Events"`
	PeakRSSMiB       float64 `json:"peakRSSMiB"`
	HeapMaxMiB       float64 `json:"heapMaxMiB"`
	// Load is the machine's 1-minute load average at the window's end.
	Load float64 `json:"load"`
}

// quantileData is a latency quantile; Censored says Ms is only a lower
// bound; Ms < 0 when nothing was measured.
type quantileData struct {
	Ms       float64 `json:"ms"`
	Censored bool    `json:"censored,omitempty"`
}

func quantileOf(l latency, q float64) quantileData {
	if l.n() == 0 {
		return quantileData{Ms: -1}
	}
	d, ok := l.quantile(q)
	return quantileData{Ms: float64(d) / float64(time.Millisecond), Censored: !ok}
}

// data returns the run as data.
func (r *report) data(now time.Time) runData {
	d := runData{
		Objects: r.cfg.objects, Run: now.UTC().Format(time.RFC3339), Commit: r.env.Commit,
		CPUs: r.env.CPUs, WritesPerSecond: r.cfg.writesPerSecond, Args: os.Args[1:],
	}
	const mib = 1 << 20
	for _, x := range r.results {
		s := scenarioData{
			Mode: x.mode, Metrics: x.m,
			MetricsP50: quantileOf(x.metricsLat, 0.5), MetricsP99: quantileOf(x.metricsLat, 0.99),
			OTLPP50: quantileOf(x.otlpLat, 0.5), OTLPP99: quantileOf(x.otlpLat, 0.99),
			PeakRSSMiB: float64(x.peakRSS) / mib, HeapMaxMiB: x.heapMax / mib, Load: x.load,
		}
		if x.window > 0 {
			s.CPUCores = x.cpu / x.window.Seconds()
		}
		if x.events > 0 {
			s.CPUPer1000Events = x.cpu / x.events * 1000
		}
		d.Results = append(d.Results, s)
	}
	return d
}

// writeData writes d as objects-N.json into dir.
func writeData(dir string, d runData) (string, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("objects-%d.json", d.Objects))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// loadAverage returns the 1-minute load average, -1 when unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func fmtLoad(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v)
}
