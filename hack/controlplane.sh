#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from the Go module proxy into a
# cache outside the clone, keyed by version, and prints that directory as
# the last line of stdout, so that KUBEBUILDER_ASSETS=$(hack/controlplane.sh)
# works. Progress goes to stderr. A second run with the cache filled costs
# nothing; fresh clones on the same machine reuse it.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${METRICS_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metrics-operator}
dir=$cache/controlplane/$KUBE_VERSION-etcd-$ETCD_VERSION

if [[ -x $dir/kube-apiserver && -x $dir/etcd && -x $dir/kubectl ]]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$cache/controlplane"
tmp=$(mktemp -d "$cache/controlplane/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
start=$SECONDS
echo "controlplane: building kube-apiserver and kubectl $KUBE_VERSION (about 5 minutes the first time)" >&2
(cd "$root/hack/controlplane" &&
  go build -ldflags "$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver &&
  go build -ldflags "$ldflags" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl) >&2
echo "controlplane: building etcd $ETCD_VERSION" >&2
(cd "$root/hack/controlplane/etcd" &&
  go build -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3) >&2
echo "controlplane: built in $((SECONDS - start))s" >&2

# Replace atomically so a concurrent or interrupted build never leaves a
# half-filled directory behind.
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
