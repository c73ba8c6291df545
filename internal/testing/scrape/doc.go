// Package scrape reads a Prometheus /metrics endpoint the way Prometheus
// does, parsing the text format with prometheus/common/expfmt, so tests
// assert on families and samples rather than on strings.
package scrape
