package main

import (
	"errors"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

var modes = []struct {
	name  string
	color color.Color
}{
	{"polling", color.RGBA{R: 0xd9, G: 0x5f, B: 0x02, A: 0xff}},
	{"event-driven", color.RGBA{R: 0x1b, G: 0x6a, B: 0xc9, A: 0xff}},
}

// legendRoom stretches a linear y axis so the legend, top left, stays
// clear of the data.
const legendRoom = 1.5

// freshnessGoal is DESIGN.md's p99 goal for write → /metrics.
const freshnessGoalMs = 250

// drawAll writes the three plots into dir and returns their paths.
func drawAll(runs []run, dir string) ([]string, error) {
	wide := widest(runs)
	m, n := sharedMetricCount(runs)
	plots := []struct {
		file string
		draw func() (*plot.Plot, error)
	}{
		{"bench-freshness.svg", func() (*plot.Plot, error) { return freshness(wide) }},
		{"bench-cpu.svg", func() (*plot.Plot, error) { return cpu(wide) }},
		{"bench-memory.svg", func() (*plot.Plot, error) { return memory(runs, m, n) }},
	}
	var written []string
	var errs []error
	for _, pl := range plots {
		p, err := pl.draw()
		if err == nil {
			path := filepath.Join(dir, pl.file)
			if err = save(p, path); err == nil {
				written = append(written, path)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pl.file, err))
		}
	}
	return written, errors.Join(errs...)
}

func freshness(r run) (*plot.Plot, error) {
	p := newPlot(fmt.Sprintf("write → /metrics latency, %s objects, writes at a 500/s target", thousands(r.Objects)), r,
		"metrics on the watch (M)", "latency (ms)")
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	var lowerBounds plotter.XYs
	for _, mode := range modes {
		for _, q := range []struct {
			name   string
			get    func(scenario) quantile
			dashed bool
		}{
			{"p99", func(s scenario) quantile { return s.MetricsP99 }, false},
			{"p50", func(s scenario) quantile { return s.MetricsP50 }, true},
		} {
			var xys plotter.XYs
			for _, m := range metricCounts(r) {
				s, ok := find(r, mode.name, m)
				v := q.get(s)
				if !ok || v.Ms <= 0 {
					continue
				}
				xys = append(xys, plotter.XY{X: float64(m), Y: v.Ms})
				if v.Censored {
					lowerBounds = append(lowerBounds, plotter.XY{X: float64(m), Y: v.Ms})
				}
			}
			if err := addLine(p, mode.name+" "+q.name, xys, mode.color, q.dashed); err != nil {
				return nil, err
			}
		}
	}
	if len(lowerBounds) > 0 {
		s, err := plotter.NewScatter(lowerBounds)
		if err != nil {
			return nil, err
		}
		s.Shape = draw.TriangleGlyph{}
		s.Radius = vg.Points(5)
		p.Add(s)
		p.Legend.Add("never seen: a lower bound", s)
	}
	if err := addGoal(p, r, freshnessGoalMs); err != nil {
		return nil, err
	}
	// Room above the data for the legend: the log axis spans decades.
	p.Y.Max *= 100
	return p, nil
}

func cpu(r run) (*plot.Plot, error) {
	p := newPlot(fmt.Sprintf("operator CPU, %s objects, writes at a 500/s target", thousands(r.Objects)), r,
		"metrics on the watch (M)", "CPU (average cores)")
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	for _, mode := range modes {
		var xys plotter.XYs
		for _, m := range metricCounts(r) {
			if s, ok := find(r, mode.name, m); ok {
				xys = append(xys, plotter.XY{X: float64(m), Y: s.CPUCores})
			}
		}
		if err := addLine(p, mode.name, xys, mode.color, false); err != nil {
			return nil, err
		}
	}
	p.Y.Max *= legendRoom
	return p, nil
}

func memory(runs []run, m, n int) (*plot.Plot, error) {
	title := fmt.Sprintf("operator peak RSS, M = %d metrics", m)
	if n < 2 {
		title += " (one run)"
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = "objects on the watch (N)", "peak RSS (MiB)"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	for _, mode := range modes {
		var xys plotter.XYs
		for _, r := range runs {
			if s, ok := find(r, mode.name, m); ok && s.PeakRSSMiB > 0 {
				xys = append(xys, plotter.XY{X: float64(r.Objects), Y: s.PeakRSSMiB})
			}
		}
		if err := addLine(p, mode.name, xys, mode.color, false); err != nil {
			return nil, err
		}
	}
	p.Y.Max *= legendRoom
	return p, nil
}

func newPlot(title string, r run, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	if r.Commit != "" {
		p.Title.Text += fmt.Sprintf("\n(run %s, commit %.12s", r.Run, r.Commit)
		if lo, hi, ok := loadRange(r); ok && r.CPUs > 0 {
			p.Title.Text += fmt.Sprintf(", machine load %.1f–%.1f on %d CPUs", lo, hi, r.CPUs)
		}
		p.Title.Text += ")"
	}
	p.X.Label.Text, p.Y.Label.Text = x, y
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return p
}

// addLine adds a line with points; nothing when xys is empty.
func addLine(p *plot.Plot, name string, xys plotter.XYs, c color.Color, dashed bool) error {
	if len(xys) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color, s.Color = c, c
	l.Width = vg.Points(1.5)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	return nil
}

// addGoal draws the goal as a horizontal line across the run's numbers of
// metrics.
func addGoal(p *plot.Plot, r run, ms float64) error {
	counts := metricCounts(r)
	if len(counts) == 0 {
		return nil
	}
	l, err := plotter.NewLine(plotter.XYs{{X: float64(counts[0]), Y: ms}, {X: float64(counts[len(counts)-1]), Y: ms}})
	if err != nil {
		return err
	}
	l.Color = color.Gray{Y: 0x60}
	l.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
	p.Add(l)
	p.Legend.Add(fmt.Sprintf("goal: p99 ≤ %g ms", ms), l)
	return nil
}

func save(p *plot.Plot, path string) error {
	c := vgsvg.New(7*vg.Inch, 4.5*vg.Inch)
	p.Draw(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	var b []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}
