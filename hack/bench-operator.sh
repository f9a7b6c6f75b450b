#!/usr/bin/env bash
# Operator benchmark on the local control plane (kwok nodes): N three-service graphs.
#  1. ceiling: a bare client makes the operator's minimum writes (the graph, its finalizer, the
#     discovery RBAC, the components, Deployments and Services from the operator's own
#     builders, and once the Deployments are ready the component and graph statuses), on a
#     fresh cluster;
#  2. operator: the release-built operator reconciles N graphs, on another fresh cluster;
#     idle/steady/peak RSS, API writes per graph, then a restart over the converged state
#     must write nothing.
# The API server's audit log (DYNAMO_E2E_AUDIT) counts every request the operator makes, by
# verb and resource, during the run and during the restart: the operator runs as its own
# ServiceAccount so its requests are told apart from the driver's and the control plane's.
#
#   hack/bench-operator.sh [N]        (default 200)
# Env: BENCH_RUST_LOG (the operator's RUST_LOG, default warn); BENCH_LOGS=DIR keeps the
# operator's logs there.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
export DYNAMO_E2E_CLUSTER=bench
export DYNAMO_E2E_AUDIT=1
operator_user=system:serviceaccount:kube-system:bench-operator
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

# A kubeconfig of the operator's own ServiceAccount (cluster-admin), so the audit log names it.
operator_kubeconfig() {
  local admin kc=$out/operator.kubeconfig token
  admin=$(hack/cluster.sh env | sed -n 's/^export KUBECONFIG=//p')
  x kubectl create serviceaccount bench-operator -n kube-system >/dev/null
  x kubectl create clusterrolebinding bench-operator --clusterrole=cluster-admin \
    --serviceaccount=kube-system:bench-operator >/dev/null
  token=$(x kubectl create token bench-operator -n kube-system --duration=6h)
  cp "$admin" "$kc"
  x kubectl --kubeconfig "$kc" config set-credentials bench-operator --token="$token" >/dev/null
  x kubectl --kubeconfig "$kc" config set-context --current --user=bench-operator >/dev/null
  echo "$kc"
}
audit_log() { echo "$(hack/cluster.sh env | sed -n 's/^export DYNAMO_E2E_STATE=//p')/logs/audit.log"; }
audit_lines() { wc -l <"$(audit_log)"; }

start_operator() { # log file
  hack/cluster.sh exec env KUBECONFIG="$kubeconfig" RUST_LOG="${BENCH_RUST_LOG:-warn}" target/release/dynamo-operator \
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
kubeconfig=$(operator_kubeconfig)
run_from=$(audit_lines)
start_operator "$out/operator.log"
idle=$(rss_mib "$operator_pid" VmRSS)
x target/release/bench_operator operator "$n" bench-operator | tee "$out/operator.json"
sleep 5
steady=$(rss_mib "$operator_pid" VmRSS)
peak=$(rss_mib "$operator_pid" VmHWM)
total_writes=$(writes)

echo "== restart over the converged state" >&2
stop_operator
restart_from=$(audit_lines)
start_operator "$out/operator2.log"
sleep 15
resync_writes=$(writes)
stop_operator
sleep 1
restart_to=$(audit_lines)
cp "$(audit_log)" "$out/audit.log"
[[ -n ${BENCH_LOGS:-} ]] && cp "$out"/operator*.log "$BENCH_LOGS"/

python3 - "$out/ceiling.json" "$out/operator.json" "$n" "$idle" "$steady" "$peak" "$total_writes" "$resync_writes" \
  "$out/audit.log" "$operator_user" "$run_from" "$restart_from" "$restart_to" <<'PY'
import collections, json, sys
ceiling, operator = (json.load(open(p)) for p in sys.argv[1:3])
n = int(sys.argv[3]); idle, steady, peak = sys.argv[4:7]; writes, resync = float(sys.argv[7]), sys.argv[8]
audit, user = sys.argv[9], sys.argv[10]
run_from, restart_from, restart_to = (int(v) for v in sys.argv[11:14])
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

# The operator's requests, from the API server's audit log.
READS, WATCH = {"get", "list"}, {"watch"}
def requests(first, last):
    counts = collections.Counter()
    with open(audit) as f:
        for i, line in enumerate(f):
            if i < first or i >= last:
                continue
            e = json.loads(line)
            if e.get("stage") != "ResponseComplete" or e["user"].get("username") != user:
                continue
            ref = e.get("objectRef") or {}
            resource = ref.get("resource", e.get("requestURI", "?").split("?")[0])
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            counts[(e["verb"], resource)] += 1
    return counts
def show(title, counts, per):
    reads = sum(c for (v, _), c in counts.items() if v in READS)
    watches = sum(c for (v, _), c in counts.items() if v in WATCH)
    writes = sum(c for (v, _), c in counts.items() if v not in READS | WATCH)
    print(f"{title}: {reads} get/list, {watches} watch, {writes} writes ({writes / per:.1f} per graph)")
    for (verb, resource), c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"    {verb:<7} {resource:<45} {c:6d}  {c / per:6.2f} per graph")
run = requests(run_from, restart_from)
show("operator requests during the run (audit log)", run, n)
events = sum(c for (v, r), c in run.items() if r == "events" and v in {"create", "patch", "update"})
print(f"events per graph: {events / n:.1f}")
show("operator requests during the restart (audit log)", requests(restart_from, restart_to), n)
PY
