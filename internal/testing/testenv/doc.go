// Package testenv starts a real control plane (etcd and kube-apiserver
// built by `make controlplane`) with this project's CRDs installed, for
// integration tests. It is imported by tests only.
package testenv
