//go:build tools

// Package etcd pins the etcd server sources that `make controlplane` builds.
package etcd

import _ "go.etcd.io/etcd/server/v3"
