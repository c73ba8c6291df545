//go:build tools

// Package controlplane pins the Kubernetes sources that `make controlplane`
// builds kube-apiserver and kubectl from. It is a separate module so the
// operator's own go.mod never depends on k8s.io/kubernetes.
package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
