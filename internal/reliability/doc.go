// Package reliability injects faults into real processes and checks that
// every value comes back right: a kube-apiserver stopped while objects
// change, watches expired by an etcd compaction, the operator binary
// killed with SIGKILL and started again. Each test runs its own control
// plane (it stops parts of it) and the operator built from
// ./cmd/metrics-operator; docs/reliability.md lists the faults, the test
// that injects each and the recovery times measured. The package holds
// tests only.
package reliability
