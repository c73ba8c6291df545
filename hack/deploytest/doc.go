// Package deploytest checks what users install beside the binary: the Helm
// chart (charts/metrics-operator) and the alerts and dashboard it ships.
//
// It is a module of its own because Helm and Prometheus' PromQL parser,
// used here as libraries, each bring a large dependency tree (Helm: kubectl,
// OCI registry clients, sprig; Prometheus: its whole server's requirements
// and a newer go directive) that the operator itself must not carry. The
// replace directive builds it against the operator's module in this
// repository, so its tests use the operator's test harness and its
// registered self-metrics.
package deploytest
