// Package operator assembles the manager: it validates Options, builds the
// controller-runtime manager (metrics endpoint, probes, leader election)
// and registers every controller and runnable. The binary in
// cmd/metrics-operator only parses flags and calls Run.
package operator
