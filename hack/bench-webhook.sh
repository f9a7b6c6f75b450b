#!/usr/bin/env bash
# Load benchmark of dynamo-webhook against a floor server (TLS + AdmissionReview parse +
# "allowed", nothing else), measured in the same run. Each server is pinned to core 0, the
# load generator (oha, built from crates.io once) to core 1. Traffic stays on loopback.
#
#   hack/bench-webhook.sh            # 10 s per step; DURATION=30s for longer steps
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-10s}
tools="${DYNAMO_BENCH_CACHE:-$HOME/.cache/dynamo-bench}"
oha="$tools/bin/oha"
if [[ ! -x $oha ]]; then
  echo "building oha 1.16.0 into $tools (once)" >&2
  cargo install oha --version 1.16.0 --locked --root "$tools" >&2
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }

cargo build --release --locked -p dynamo-webhook --bin dynamo-webhook --example floor >&2
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
review=hack/bench/dgd-update-review.json
path=/validate-nvidia-com-v1alpha1-dynamographdeployment

start_server() { # name port: starts it pinned to core 0, prints its pid
  case $1 in
    # exec: the recorded PID must be the server's, not a subshell's.
    floor) exec taskset -c 0 target/release/examples/floor "127.0.0.1:$2" "$work" ;;
    webhook) RUST_LOG=warn exec taskset -c 0 target/release/dynamo-webhook --listen "127.0.0.1:$2" \
      --health-probe-bind-address "127.0.0.1:$(($2 + 1))" --cert-dir "$work" --restrictedNamespace bench ;;
  esac >"$work/$1.log" 2>&1 &
  echo $!
}

load() { # port [rate]: one oha run, JSON summary on stdout
  local rate=()
  [[ -n ${2:-} ]] && rate=(-q "$2")
  taskset -c 1 "$oha" --no-tui --insecure --output-format json -z "$duration" -c 64 "${rate[@]}" \
    -m POST -T application/json -D "$review" "https://localhost:$1$path"
}

summary() { # label json rss_kib
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
label, data, rss = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
s, p = data["summary"], data["latencyPercentiles"]
codes = data.get("statusCodeDistribution", {})
ms = lambda v: "-" if v is None else f"{v * 1000:.3f}"
print(f"{label:<26} {s['requestsPerSec']:>10.0f} req/s  p50 {ms(p.get('p50'))} ms  p99 {ms(p.get('p99'))} ms  "
      f"p99.9 {ms(p.get('p99.9'))} ms  ok {codes.get('200', 0)}  other {sum(v for k, v in codes.items() if k != '200')}  "
      f"RSS {rss / 1024:.1f} MiB")
PY
}

declare -A saturated
port=20443
for server in floor webhook; do
  pid=$(start_server "$server" "$port")
  pids+=("$pid")
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  # A sanity check that the reviews are answered as expected before measuring.
  curl -sk -H 'Content-Type: application/json' --data-binary "@$review" "https://localhost:$port$path" |
    grep -q '"allowed":true' || { echo "$server did not allow the review" >&2; cat "$work/$server.log" >&2; exit 1; }
  for rate in "" 1000 5000; do
    json=$(load "$port" "$rate")
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    label="$server ${rate:-saturation}${rate:+ req/s}"
    summary "$label" "$json" "$rss"
    [[ -z $rate ]] && saturated[$server]=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["requestsPerSec"])' <<<"$json")
  done
  kill "$pid"
  port=$((port + 10))
done
python3 -c "import sys; f, w = map(float, sys.argv[1:]); print(f'webhook / floor throughput at saturation: {w / f:.2f}')" \
  "${saturated[floor]}" "${saturated[webhook]}"
