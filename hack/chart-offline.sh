#!/usr/bin/env bash
# A copy of charts/platform that helm can install without network access: the remote
# dependencies (NATS, etcd, Grove, KAI) are dropped from its Chart.yaml and the operator
# subchart is placed in its charts/ folder. Install it with those components disabled, e.g.
#   --set nats.enabled=false --set etcd.enabled=false
# The published chart is never edited; everything else in the copy is the real chart.
#
#   dir=$(hack/chart-offline.sh [DEST])     # prints the chart directory
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${1:-$(mktemp -d "${TMPDIR:-/tmp}/dynamo-platform-chart.XXXXXX")}
chart="$dest/dynamo-platform"
rm -rf "$chart"
mkdir -p "$chart/charts"
cp -R "$repo/charts/platform/." "$chart/"
cp -R "$repo/charts/platform/components/operator" "$chart/charts/dynamo-operator"
# Keep only dependencies served from the chart itself (file://); each entry starts with "  - name:".
awk '
  /^dependencies:/ { in_deps = 1; print; next }
  in_deps && /^[^ ]/ { flush(); in_deps = 0 }
  in_deps && /^  - / { flush() }
  in_deps { entry = entry $0 "\n"; next }
  { print }
  END { flush() }
  function flush() { if (entry ~ /repository: file:\/\//) printf "%s", entry; entry = "" }
' "$repo/charts/platform/Chart.yaml" > "$chart/Chart.yaml"
echo "$chart"
