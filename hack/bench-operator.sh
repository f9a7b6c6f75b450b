#!/usr/bin/env bash
# Operator benchmark on the local control plane (kwok nodes): N three-service graphs.
#  1. ceiling: a bare client makes the operator's minimum writes (the graph, its finalizer, the
#     discovery RBAC, the components, Deployments and Services from the operator's own
#     builders, and once the Deployments are ready the component and graph statuses), on a
#     fresh cluster;
#  2. operator: the operator (built in its own profile, see Cargo.toml) reconciles N graphs,
#     on another fresh cluster; idle/steady/peak RSS, CPU seconds, API writes per graph, then
#     a restart over the converged state: time to ready (caches synced), time until every
#     graph and component was reconciled once, and it must write nothing.
# The API server's audit log (DYNAMO_E2E_AUDIT) counts every request the operator makes, by
# verb and resource, during the run and during the restart: the operator runs as its own
# ServiceAccount so its requests are told apart from the driver's and the control plane's.
#
#   hack/bench-operator.sh [--runs R] [N]   (default 1 run of 200 graphs; with R > 1 each run
#                                            is printed, then the median of each figure)
#   hack/bench-operator.sh --memory [N]     operator only, no ceiling: N graphs (default 5000)
#                                            applied in five equal steps, steady RSS after each,
#                                            and the RSS per graph from a least-squares line
# Env: BENCH_RUST_LOG (the operator's RUST_LOG, default warn); BENCH_LOGS=DIR keeps the
# operator's logs there; BENCH_PERF=FILE records a CPU profile of the operator's run there
# (perf; build with CARGO_PROFILE_OPERATOR_STRIP=false for symbols); BENCH_HEAP=FILE (memory mode)
# builds the operator with its heap profiler and writes every live allocation by call site
# after the last step there (dhat's JSON; hack/heap-sites.py sums it by call site);
# BENCH_FEATURES adds cargo features to the build (package-qualified: dynamo-operator/F).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=1 memory=
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --memory) memory=1; shift ;;
    *) break ;;
  esac
done
n=${1:-$([[ -n $memory ]] && echo 5000 || echo 200)}
export DYNAMO_E2E_CLUSTER=bench
export DYNAMO_E2E_AUDIT=1
operator_user=system:serviceaccount:kube-system:bench-operator
bin=$(hack/k8s-bins.sh | tail -n 1)
export DYNAMO_E2E_BIN=$bin
# A heap profile names call sites only from a binary with symbols and line tables.
if [[ -n ${BENCH_HEAP:-} ]]; then
  export CARGO_PROFILE_OPERATOR_STRIP=false CARGO_PROFILE_OPERATOR_DEBUG=line-tables-only
fi
# The operator's own profile (Cargo.toml), as its image is built.
cargo build --profile operator --locked -p dynamo-operator -p dynamo-bench --bin dynamo-operator --bin bench_operator \
  ${BENCH_HEAP:+--features dynamo-operator/heap-profile} ${BENCH_FEATURES:+--features "$BENCH_FEATURES"} >&2
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
  hack/cluster.sh exec env KUBECONFIG="$kubeconfig" RUST_LOG="${BENCH_RUST_LOG:-warn}" target/operator/dynamo-operator \
    --health-probe-bind-address 127.0.0.1:18481 --metrics-bind-address 127.0.0.1:18482 >"$1" 2>&1 &
  operator_pid=$!
  for _ in $(seq 100); do
    x curl -sf 127.0.0.1:18481/readyz >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "operator not ready; log:" >&2; cat "$1" >&2; return 1
}
rss_mib() { awk -v k="$2:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# RSS, and its anonymous and file-backed (the binary's own pages) parts.
rss_parts() { echo "RSS $(rss_mib "$1" VmRSS) MiB (anonymous $(rss_mib "$1" RssAnon), file-backed $(rss_mib "$1" RssFile))"; }
sockets() { find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
# User plus system CPU seconds of a process.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$1/stat"; }
metric_sum() { x curl -s 127.0.0.1:18482/metrics | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'; }
writes() { metric_sum dynamo_operator_api_writes_total; }
now() { date +%s.%N; }

if [[ -n $memory ]]; then
  # Memory mode: the operator alone, graphs added in five steps; RSS must grow linearly.
  step=$(( n / 5 ))
  echo "== memory: $n graphs in steps of $step, operator only" >&2
  fresh_cluster
  kubeconfig=$(operator_kubeconfig)
  start_operator "$out/operator.log"
  sleep 2
  points="0 $(rss_mib "$operator_pid" VmRSS)"
  echo "  idle: $(rss_parts "$operator_pid")" >&2
  for i in 1 2 3 4 5; do
    x target/operator/bench_operator operator "$step" "bench-memory-$i" >/dev/null
    sleep 10
    points+=" $(( i * step )) $(rss_mib "$operator_pid" VmRSS)"
    echo "  $(( i * step )) graphs: $(rss_parts "$operator_pid"), $(sockets "$operator_pid") open sockets" >&2
  done
  cpu=$(cpu_seconds "$operator_pid")
  if [[ -n ${BENCH_HEAP:-} ]]; then
    rm -f dhat-heap.json
    kill -USR1 "$operator_pid"
    for _ in $(seq 300); do [[ -s dhat-heap.json ]] && break; sleep 1; done
    sleep 2
    mv dhat-heap.json "$BENCH_HEAP"
    echo "heap profile: $BENCH_HEAP" >&2
  fi
  python3 - "$cpu" $points <<'PY'
import sys
cpu = sys.argv[1]
values = [float(v) for v in sys.argv[2:]]
points = list(zip(values[0::2], values[1::2]))
print("graphs  steady RSS (MiB)  per graph since idle (KiB)")
for graphs, rss in points:
    per = (rss - points[0][1]) * 1024 / graphs if graphs else float("nan")
    print(f"{graphs:6.0f}  {rss:16.1f}  {per:10.1f}")
xs, ys = [p[0] for p in points[1:]], [p[1] for p in points[1:]]
mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
fit = [my + slope * (x - mx) for x in xs]
worst = max(abs(y - f) / y for y, f in zip(ys, fit))
print(f"RSS per graph (least squares over the five steps): {slope * 1024:.1f} KiB; "
      f"intercept {my - slope * mx:.1f} MiB; largest deviation from the line {worst * 100:.1f}%")
print(f"operator CPU: {cpu} s")
PY
  exit 0
fi

run_once() {
  echo "== ceiling: bare client, $n graphs" >&2
  fresh_cluster
  x target/operator/bench_operator ceiling "$n" bench-ceiling | tee "$out/ceiling.json"

  echo "== operator: $n graphs" >&2
  fresh_cluster
  kubeconfig=$(operator_kubeconfig)
  run_from=$(audit_lines)
  start_operator "$out/operator.log"
  idle=$(rss_mib "$operator_pid" VmRSS)
  perf_pid=
  if [[ -n ${BENCH_PERF:-} ]]; then
    perf record -F 499 -g -p "$operator_pid" -o "$BENCH_PERF" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  x target/operator/bench_operator operator "$n" bench-operator | tee "$out/operator.json"
  if [[ -n $perf_pid ]]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  sleep 5
  steady=$(rss_mib "$operator_pid" VmRSS)
  peak=$(rss_mib "$operator_pid" VmHWM)
  echo "operator open sockets at steady state: $(sockets "$operator_pid") (API connections and its two listeners)" >&2
  total_writes=$(writes)
  cpu=$(cpu_seconds "$operator_pid")

  echo "== restart over the converged state" >&2
  stop_operator
  restart_from=$(audit_lines)
  started=$(now)
  start_operator "$out/operator2.log"
  ready_at=$(now)
  # The initial pass: every graph and component reconciled at least once (4N reconciles),
  # and then 3 s without another; its end is the last reconcile's time.
  reconciled_at= last_total=-1 last_change=$(now)
  for _ in $(seq 600); do
    total=$(metric_sum dynamo_operator_reconcile_total)
    if [[ $total != "$last_total" ]]; then last_total=$total last_change=$(now); fi
    if [[ $total -ge $(( 4 * n )) ]] && python3 -c "import sys; sys.exit(0 if $(now) - $last_change >= 3 else 1)"; then
      reconciled_at=$last_change; break
    fi
    sleep 0.1
  done
  sleep 5
  resync_writes=$(writes)
  restart_rss=$(rss_mib "$operator_pid" VmRSS)
  restart_ready=$(python3 -c "print(f'{$ready_at - $started:.1f}')")
  restart_reconciled=$([[ -n $reconciled_at ]] && python3 -c "print(f'{$reconciled_at - $ready_at:.1f}')" || echo never)
  stop_operator
  sleep 1
  restart_to=$(audit_lines)
  cp "$(audit_log)" "$out/audit.log"
  if [[ -n ${BENCH_LOGS:-} ]]; then cp "$out"/operator*.log "$BENCH_LOGS"/; fi
  python3 - "$out/ceiling.json" "$out/operator.json" "$n" "$idle" "$steady" "$peak" "$total_writes" "$resync_writes" \
    "$out/audit.log" "$operator_user" "$run_from" "$restart_from" "$restart_to" "$cpu" "$restart_ready" \
    "$restart_reconciled" "$out/figures.jsonl" "$restart_rss" <<'PY'
import collections, json, sys
ceiling, operator = (json.load(open(p)) for p in sys.argv[1:3])
n = int(sys.argv[3]); idle, steady, peak = sys.argv[4:7]; writes, resync = float(sys.argv[7]), sys.argv[8]
audit, user = sys.argv[9], sys.argv[10]
run_from, restart_from, restart_to = (int(v) for v in sys.argv[11:14])
cpu, restart_ready, restart_reconciled, figures_file, restart_rss = sys.argv[14:19]
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
creates = sum(c for (v, r), c in run.items() if v == "create" and r != "events")
applies = sum(c for (v, r), c in run.items() if v == "patch" and r != "events" and "/" not in r)
print(f"events per graph: {events / n:.1f}; children created per graph: {creates / n:.1f} "
      f"(plus {applies / n:.1f} patches, server-side applies among them); events per child {events / max(creates, applies, 1):.2f}")
print(f"operator CPU: {cpu} s ({float(cpu) * 1000 / n:.1f} ms per graph)")
restart = requests(restart_from, restart_to)
show("operator requests during the restart (audit log)", restart, n)
print(f"restart: ready (caches synced) {restart_ready} s after start; every object reconciled {restart_reconciled} s after ready; RSS then {restart_rss} MiB")
run_reads = sum(c for (v, _), c in run.items() if v in READS)
restart_reads = sum(c for (v, _), c in restart.items() if v in READS)
restart_writes = sum(c for (v, _), c in restart.items() if v not in READS | WATCH)
figures = {
    "ratio": operator[key] / ceiling[key],
    "operator_seconds": operator[key],
    "ceiling_seconds": ceiling[key],
    "writes_per_graph": writes / n,
    "events_per_graph": events / n,
    "reads_during_run": run_reads,
    "steady_rss_mib": float(steady),
    "peak_rss_mib": float(peak),
    "cpu_seconds": float(cpu),
    "restart_ready_seconds": float(restart_ready),
    "restart_reconciled_seconds": float(restart_reconciled) if restart_reconciled != "never" else float("nan"),
    "restart_reads": restart_reads,
    "restart_rss_mib": float(restart_rss),
    "restart_writes": restart_writes,
}
with open(figures_file, "a") as f:
    f.write(json.dumps(figures) + "\n")
PY
}

for run in $(seq "$runs"); do
  [[ $runs -gt 1 ]] && echo "=== run $run of $runs" && echo "=== run $run of $runs" >&2
  run_once
done
if [[ $runs -gt 1 ]]; then
  python3 - "$out/figures.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
print(f"=== {len(runs)} runs: each, then the median")
for key in runs[0]:
    values = [r[key] for r in runs]
    print(f"{key:<28} " + "  ".join(f"{v:9.2f}" for v in values) + f"   median {statistics.median(values):9.2f}")
PY
fi
