#!/usr/bin/env bash
# Operator benchmark on the local control plane (kwok nodes): N three-service graphs.
#  1. ceiling: a bare client makes the operator's minimum writes (the graph, its finalizer, the
#     discovery RBAC, the components, Deployments and Services from the operator's own
#     builders, and once the Deployments are ready the component and graph statuses), on a
#     fresh cluster;
#  2. operator: the release-built operator reconciles N graphs, on another fresh cluster;
#     idle/steady/peak RSS, API writes per graph, then a restart over the converged state
#     must write nothing.
#
#   hack/bench-operator.sh [N]        (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
export DYNAMO_E2E_CLUSTER=bench
bin=$(hack/k8s-bins.sh | tail -n 1)
export DYNAMO_E2E_BIN=$bin
cargo build --release --locked -p dynamo-operator -p dynamo-bench --bin dynamo-operator --bin bench_operator >&2
out=$(mktemp -d)
operator_pid=
stop_operator() { [[ -n $operator_pid ]] && kill "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null; operator_pid=; true; }
trap 'stop_operator; hack/cluster.sh down >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
x() { hack/cluster.sh exec env PATH="$bin:$PATH" "$@"; }

fresh_cluster() {
  hack/cluster.sh down >/dev/null 2>&1 || true
  hack/cluster.sh up 2>/dev/null
  x kubectl apply --server-side -f charts/crds/templates/ >/dev/null
  x kubectl wait --for condition=established crd --all --timeout=60s >/dev/null
  # One fake node that takes every pod of the run.
  x kubectl patch node kwok-node-0 --subresource=status --type merge \
    -p '{"status":{"capacity":{"pods":"20000","cpu":"4000"},"allocatable":{"pods":"20000","cpu":"4000"}}}' >/dev/null
}

start_operator() { # log file
  hack/cluster.sh exec env RUST_LOG=warn target/release/dynamo-operator \
    --health-probe-bind-address 127.0.0.1:18481 --metrics-bind-address 127.0.0.1:18482 >"$1" 2>&1 &
  operator_pid=$!
  for _ in $(seq 100); do
    x curl -sf 127.0.0.1:18481/readyz >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "operator not ready; log:" >&2; cat "$1" >&2; return 1
}
rss_mib() { awk -v k="$2:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
writes() { x curl -s 127.0.0.1:18482/metrics | awk '$1 == "dynamo_operator_api_writes_total" {print $2}'; }

echo "== ceiling: bare client, $n graphs" >&2
fresh_cluster
x target/release/bench_operator ceiling "$n" bench-ceiling | tee "$out/ceiling.json"

echo "== operator: $n graphs" >&2
fresh_cluster
start_operator "$out/operator.log"
idle=$(rss_mib "$operator_pid" VmRSS)
x target/release/bench_operator operator "$n" bench-operator | tee "$out/operator.json"
sleep 5
steady=$(rss_mib "$operator_pid" VmRSS)
peak=$(rss_mib "$operator_pid" VmHWM)
total_writes=$(writes)

echo "== restart over the converged state" >&2
stop_operator
start_operator "$out/operator2.log"
sleep 15
resync_writes=$(writes)
stop_operator

python3 - "$out/ceiling.json" "$out/operator.json" "$n" "$idle" "$steady" "$peak" "$total_writes" "$resync_writes" <<'PY'
import json, sys
ceiling, operator = (json.load(open(p)) for p in sys.argv[1:3])
n = int(sys.argv[3]); idle, steady, peak = sys.argv[4:7]; writes, resync = float(sys.argv[7]), sys.argv[8]
key = "start_to_all_ready_seconds"
print(f"graphs: {n} x 3 services")
for label, r in (("ceiling (bare client)", ceiling), ("operator", operator)):
    print(f"{label:<22} start->all ready {r[key]:7.1f} s   last apply->all ready {r['last_apply_to_all_ready_seconds']:7.1f} s"
          f"   apply->ready p50 {r['p50_apply_to_ready_seconds']:6.2f} s  p99 {r['p99_apply_to_ready_seconds']:6.2f} s")
print(f"operator / ceiling time: {operator[key] / ceiling[key]:.2f}")
print(f"operator RSS: idle {idle} MiB, steady {steady} MiB, peak {peak} MiB")
# The ceiling's writes less the user's apply of each graph: the minimum the operator needs.
minimum = ceiling["driver_writes"] / n - 1
print(f"operator API writes: {writes:.0f} total, {writes / n:.1f} per graph (minimum {minimum:.0f}, the ceiling's, besides the user's apply; events not counted)")
print(f"writes after a restart over the converged state: {resync}")
PY
