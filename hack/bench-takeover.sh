#!/usr/bin/env bash
# Leader takeover times of dynamo-operator, RUNS times each (default 5): after the leader
# stops cleanly (SIGTERM: it releases the lease) and after it is killed (SIGKILL: the lease
# must expire, 15 s). Runs on its own local control plane.
#
#   hack/bench-takeover.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
export DYNAMO_E2E_CLUSTER=takeover
bin=$(hack/k8s-bins.sh | tail -n 1)
export DYNAMO_E2E_BIN=$bin
cargo build --locked -p dynamo-operator >&2
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; hack/cluster.sh down >/dev/null 2>&1 || true' EXIT
hack/cluster.sh down >/dev/null 2>&1 || true
hack/cluster.sh up 2>/dev/null
x() { hack/cluster.sh exec env PATH="$bin:$PATH" "$@"; }
x kubectl apply --server-side -f charts/crds/templates/ >/dev/null
x kubectl create namespace bench >/dev/null
n=0
start() { # index: starts candidate number index (its own admin ports), prints its pid
  local port=$((19100 + 2 * $1))
  hack/cluster.sh exec target/debug/dynamo-operator --restrictedNamespace bench --leader-elect \
    --health-probe-bind-address "127.0.0.1:$port" --metrics-bind-address "127.0.0.1:$((port + 1))" \
    >"/tmp/takeover-$port.log" 2>&1 &
  echo $!
}
holder_is() { # pid: true when the lease holder identity ends with _pid
  [[ $(x kubectl -n bench get lease dynamo.nvidia.com -o jsonpath='{.spec.holderIdentity}' 2>/dev/null) == *_$1 ]]
}
wait_holder() { # pid -> prints seconds until it holds the lease (gives up after 60 s)
  local t0=$EPOCHREALTIME deadline=$((SECONDS + 60))
  until holder_is "$1"; do
    ((SECONDS < deadline)) || { echo "candidate $1 never became leader" >&2; exit 1; }
    sleep 0.05
  done
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$EPOCHREALTIME"
}
graceful=() crash=()
n=$((n + 1)); leader=$(start "$n"); pids+=("$leader")
wait_holder "$leader" >/dev/null
for i in $(seq "$runs"); do
  n=$((n + 1)); standby=$(start "$n"); pids+=("$standby"); sleep 3
  kill -TERM "$leader"; graceful+=("$(wait_holder "$standby")")
  leader=$standby
  n=$((n + 1)); standby=$(start "$n"); pids+=("$standby"); sleep 3
  kill -9 "$leader"; crash+=("$(wait_holder "$standby")")
  leader=$standby
  echo "run $i: SIGTERM takeover ${graceful[-1]} s, SIGKILL takeover ${crash[-1]} s" >&2
done
python3 - "${graceful[*]}" "${crash[*]}" <<'PY'
import statistics, sys
for label, values in (("after SIGTERM", sys.argv[1]), ("after SIGKILL", sys.argv[2])):
    v = [float(x) for x in values.split()]
    print(f"takeover {label}: runs {len(v)}, min {min(v):.2f} s, median {statistics.median(v):.2f} s, max {max(v):.2f} s")
PY
