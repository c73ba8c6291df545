// Command plot draws the benchmark's SVG plots from the data files
// hack/bench writes (docs/bench/objects-N.json):
//
//   - bench-freshness.svg: write → /metrics p50 and p99 against the number
//     of metrics on the watch, both modes, at the run with the most
//     numbers of metrics;
//   - bench-cpu.svg: the operator's CPU (average cores under the write
//     load) against the number of metrics, both modes, same run;
//   - bench-memory.svg: peak RSS against the number of objects, both
//     modes, at the number of metrics the most runs share.
//
// It is a module of its own so that the operator's module does not carry
// the plotting library.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	data := flag.String("data", "docs/bench", "directory of the objects-N.json files hack/bench writes")
	out := flag.String("out", "docs", "directory to write the SVG files into")
	flag.Parse()
	runs, err := readRuns(*data)
	if err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
	written, err := drawAll(runs, *out)
	for _, p := range written {
		fmt.Println("wrote", p)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}
