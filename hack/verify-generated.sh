#!/usr/bin/env bash
# Regenerates deepcopy code, CRDs and RBAC into a scratch copy and fails when
# they differ from what is committed: a type changed without `make generate`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

paths=(api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml
  charts/metrics-operator/crds charts/metrics-operator/files/rbac)
for p in "${paths[@]}"; do
  mkdir -p "$scratch/before/$(dirname "$p")"
  cp -r "$p" "$scratch/before/$p"
done
make -s generate >/dev/null
stale=0
for p in "${paths[@]}"; do
  if ! diff -r "$scratch/before/$p" "$p" >"$scratch/diff" 2>&1; then
    echo "generated file is stale: $p (run 'make generate' and commit)" >&2
    cat "$scratch/diff" >&2
    stale=1
  fi
done
# Put back what was committed so the check never silently fixes the tree.
for p in "${paths[@]}"; do
  rm -rf "$p"
  cp -r "$scratch/before/$p" "$p"
done
exit $stale
