package main

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// probeLog records the probe's writes and when each seq was first seen on
// /metrics and at the OTLP receiver. A write's latency is the time until
// the first observation of its seq or a later one: once a later write is
// visible, the one before it can no longer show, and what a reader sees
// is at least that new.
type probeLog struct {
	mu      sync.Mutex
	writes  []observation // seq → when the write was sent
	metrics []observation // when a scrape's response arrived → highest seq in it
	otlp    []observation // when a push was received → highest seq in it
}

type observation struct {
	at  time.Time
	seq int64
}

func (l *probeLog) wrote(seq int64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, observation{at, seq})
}

func (l *probeLog) observeMetrics(at time.Time, seq int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.metrics = append(l.metrics, observation{at, seq})
}

func (l *probeLog) observeOTLP(at time.Time, seq int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.otlp = append(l.otlp, observation{at, seq})
}

// lastSeq is the last seq written (-1: none yet).
func (l *probeLog) lastSeq() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.writes) == 0 {
		return -1
	}
	return l.writes[len(l.writes)-1].seq
}

func highest(obs []observation) int64 {
	best := int64(-1)
	for _, o := range obs {
		best = max(best, o.seq)
	}
	return best
}

func (l *probeLog) seenMetrics() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return highest(l.metrics)
}

func (l *probeLog) seenOTLP() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return highest(l.otlp)
}

// latencies computes both latency distributions; writes not seen by end
// are censored at end.
func (l *probeLog) latencies(end time.Time) (metrics, otlp latency) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return latenciesOf(l.writes, l.metrics, end), latenciesOf(l.writes, l.otlp, end)
}

func latenciesOf(writes, obs []observation, end time.Time) latency {
	obs = append([]observation(nil), obs...)
	sort.Slice(obs, func(i, j int) bool { return obs[i].at.Before(obs[j].at) })
	var out latency
	for _, w := range writes {
		seen := false
		for _, o := range obs {
			if o.seq >= w.seq && !o.at.Before(w.at) {
				out.samples = append(out.samples, o.at.Sub(w.at))
				seen = true
				break
			}
		}
		if !seen {
			out.censored = append(out.censored, end.Sub(w.at))
		}
	}
	sort.Slice(out.samples, func(i, j int) bool { return out.samples[i] < out.samples[j] })
	sort.Slice(out.censored, func(i, j int) bool { return out.censored[i] < out.censored[j] })
	return out
}

// latency is a distribution of measured latencies plus the ones that were
// never observed (censored: known only to exceed a bound).
type latency struct {
	samples  []time.Duration
	censored []time.Duration
}

func (l latency) n() int { return len(l.samples) + len(l.censored) }

// quantile returns the q-quantile (nearest rank). ok is false when it
// falls among the censored writes; d is then the shortest censored wait,
// a lower bound.
func (l latency) quantile(q float64) (d time.Duration, ok bool) {
	n := l.n()
	if n == 0 {
		return 0, false
	}
	rank := max(int(math.Ceil(q*float64(n)))-1, 0)
	if rank < len(l.samples) {
		return l.samples[rank], true
	}
	return l.censored[0], false
}

// pct renders the q-quantile: "12 ms", "> 30 s" (censored), "n/a".
func (l latency) pct(q float64) string {
	if l.n() == 0 {
		return "n/a"
	}
	d, ok := l.quantile(q)
	if !ok {
		return "> " + fmtDuration(d)
	}
	return fmtDuration(d)
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

func fmtReady(d time.Duration, ok bool) string {
	if !ok {
		return "> " + fmtDuration(d)
	}
	return fmtDuration(d)
}

func fmtMiB(b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB", b/(1<<20))
}
