#!/usr/bin/env bash
# Copies the generated CRDs (crds/, produced by `connect-operator crd`) into the Helm chart's
# crds/ directory, which Helm installs before the templates. The copies must stay byte-for-byte
# identical; a test fails when they drift. Run after regenerating crds/.
#
#   hack/sync-chart-crds.sh           copy crds/*.yaml into charts/connect-operator/crds/
#   hack/sync-chart-crds.sh --check   exit 1 (and list the files) when the copies differ
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$root/crds"
dst="$root/charts/connect-operator/crds"

shopt -s nullglob
sources=("$src"/*.yaml)
[[ ${#sources[@]} -gt 0 ]] || { echo "sync-chart-crds: no CRDs in $src (run: connect-operator crd > crds/connectinstances.connect.operators.dev.yaml)" >&2; exit 1; }

if [[ "${1:-}" == "--check" ]]; then
  status=0
  for f in "${sources[@]}"; do
    if ! cmp -s "$f" "$dst/$(basename "$f")"; then
      echo "sync-chart-crds: charts/connect-operator/crds/$(basename "$f") differs from crds/$(basename "$f")" >&2
      status=1
    fi
  done
  for f in "$dst"/*.yaml; do
    if [[ ! -e "$src/$(basename "$f")" ]]; then
      echo "sync-chart-crds: charts/connect-operator/crds/$(basename "$f") has no source in crds/" >&2
      status=1
    fi
  done
  [[ $status -eq 0 ]] || echo "sync-chart-crds: run hack/sync-chart-crds.sh" >&2
  exit $status
fi

mkdir -p "$dst"
# Remove copies whose source is gone, then copy every source.
for f in "$dst"/*.yaml; do
  [[ -e "$src/$(basename "$f")" ]] || rm -f "$f"
done
for f in "${sources[@]}"; do
  cp "$f" "$dst/"
done
echo "sync-chart-crds: copied ${#sources[@]} CRD(s) to charts/connect-operator/crds/" >&2
