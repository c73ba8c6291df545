package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDrawAll draws the plots of the fixture runs (testdata: two object
// counts; a censored polling latency) and checks each is well-formed SVG
// that shows what its caption promises: both modes, the goal, the
// censored point marked as a lower bound, the number of metrics the
// memory plot compares.
func TestDrawAll(t *testing.T) {
	runs, err := readRuns("testdata")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	written, err := drawAll(runs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 3 {
		t.Fatalf("wrote %v, want 3 plots", written)
	}
	want := map[string][]string{
		"bench-freshness.svg": {"10,000 objects", "polling p99", "event-driven p50", "goal: p99", "never seen: a lower bound"},
		"bench-cpu.svg":       {"operator CPU", "polling", "event-driven", "average cores"},
		"bench-memory.svg":    {"M = 10 metrics", "objects on the watch", "event-driven"},
	}
	for file, texts := range want {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := wellFormed(b); err != nil {
			t.Errorf("%s is not well-formed XML: %v", file, err)
		}
		text := svgText(b)
		for _, s := range texts {
			if !strings.Contains(text, s) {
				t.Errorf("%s does not show %q", file, s)
			}
		}
	}
}

// TestCommittedPlotsAreCurrent redraws the plots from the committed data
// (docs/bench) and compares them with the committed SVGs: run `make
// plots` after `make bench`.
func TestCommittedPlotsAreCurrent(t *testing.T) {
	data := filepath.Join("..", "..", "docs", "bench")
	runs, err := readRuns(data)
	if err != nil {
		t.Skipf("no benchmark data committed: %v", err)
	}
	dir := t.TempDir()
	written, err := drawAll(runs, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range written {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join("..", "..", "docs", filepath.Base(p)))
		if err != nil {
			t.Errorf("docs/%s: %v (run make plots)", filepath.Base(p), err)
			continue
		}
		if !bytes.Equal(got, committed) {
			t.Errorf("docs/%s is not what docs/bench draws: run make plots", filepath.Base(p))
		}
	}
}

func wellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// svgText returns the character data of an SVG: its visible text.
func svgText(b []byte) string {
	d := xml.NewDecoder(bytes.NewReader(b))
	var out strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return out.String()
		}
		if cd, ok := tok.(xml.CharData); ok {
			out.Write(cd)
			out.WriteByte('\n')
		}
	}
}
