#!/usr/bin/env bash
# Build (or reuse) the pinned Kubernetes test binaries: kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, helm.
# Plus lws-manager (the LeaderWorkerSet controller) and lws-crd.yaml, hard-linked  #lws
# into the bin dir from a cache dir of their own (see k8s-bins/lws.sh).  #lws
# Plus Grove's CRDs (grove-crds/*.yaml, for DYNAMO_E2E_GROVE=1), hard-linked the same way  #grove
# from a cache dir of their own (see k8s-bins/grove.sh).  #grove
#
#   BIN=$(hack/k8s-bins.sh | tail -1)
#
# Binaries go to a cache directory OUTSIDE the clone, keyed by the wrapper
# modules, hack/versions.env and this script, so a fresh clone (CI) reuses them
# and any pin change triggers a rebuild. Logs go to stderr; the bin dir is the
# last line of stdout. Go is used only to build these upstream test tools.
#
# Env: DYNAMO_E2E_CACHE (default ~/.cache/dynamo-e2e).
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod="$hack/k8s-bins"
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$hack/versions.env"

log() { printf '[k8s-bins %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm)
# Default kwok stages (copied next to the binaries so hack/cluster.sh needs no GOMODCACHE).
stages=(node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease
        pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete)

cache=${DYNAMO_E2E_CACHE:-$HOME/.cache/dynamo-e2e}
# Key: everything that determines the output. (go.mod too: replace/godebug
# changes do not always show up in go.sum.)
# Lines ending in "#lws" (in this script and versions.env) are left out: they concern  #lws
# only LWS, which has a cache dir and key of its own (k8s-bins/lws.sh), so adding or  #lws
# bumping it never rebuilds the binaries above. Never tag a line that affects those.  #lws
# Lines ending in "#grove" likewise (Grove's CRDs, k8s-bins/grove.sh).  #grove
key=$(cat "$mod/go.mod" "$mod/go.sum" "$mod/tools/go.mod" "$mod/tools/go.sum" \
          "$mod/cmd/etcd/main.go" "$hack/versions.env" "${BASH_SOURCE[0]}" |
      grep -vE '[#](lws|grove)$' |  #lws
      sha256sum | cut -c1-16)
out="$cache/bin-$K8S_VERSION-$key"
# shellcheck source-path=SCRIPTDIR source=k8s-bins/lws.sh  #lws
source "$mod/lws.sh"  #lws
# shellcheck source-path=SCRIPTDIR source=k8s-bins/grove.sh  #grove
source "$mod/grove.sh"  #grove

complete() {
  local b
  for b in "${bins[@]}"; do [[ -x "$1/$b" ]] || return 1; done
  [[ -d "$1/kwok-stages" ]]
}

# A built bin dir: build LWS if needed and link it in (a no-op when it is there).  #lws
# The same for Grove's CRDs.  #grove
if complete "$out"; then lws_ensure "$out"; fi  #lws
if complete "$out"; then grove_ensure "$out"; fi  #grove
if complete "$out"; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache"
# Serialise concurrent builders (e.g. CI and a developer shell) on one lock;
# the loser then finds the finished cache.
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  log "another build holds $cache/.build.lock; waiting"
  flock 9
fi
if complete "$out"; then lws_ensure "$out"; fi  #lws
if complete "$out"; then grove_ensure "$out"; fi  #grove
if complete "$out"; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || die "go not found in PATH"
# GOTOOLCHAIN=local: never download another toolchain. -mod=readonly: the
# committed go.mod/go.sum are the truth; fail rather than edit them.
# -buildvcs=false: output must not depend on the clone's git state.
export GOTOOLCHAIN CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
log "building into $out ($(go version | awk '{print $3}'), GOMAXPROCS=${GOMAXPROCS:-$(nproc)})"

tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/kwok-stages"
t0=$(date +%s)
phase_t=$t0
phases=""
phase() { # phase <name>: log the duration of the phase that just ended
  local now; now=$(date +%s)
  log "phase $1: $((now - phase_t))s"
  phases+="$1=$((now - phase_t))s "
  phase_t=$now
}

download() { # retry once: a transient proxy error must not cost a CI run
  (cd "$1" && go mod download) && return 0
  log "go mod download failed in $1; retrying once in 10s"
  sleep 10
  (cd "$1" && go mod download)
}
download "$mod"
download "$mod/tools"
phase download

# Version ldflags: without them /version says v0.0.0-master, which breaks helm
# kubeVersion constraints and kubectl skew checks (same vars as upstream's
# hack/lib/version.sh, in both component-base and client-go).
minor=$(cut -d. -f2 <<<"$K8S_VERSION")
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
kldf="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kldf+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  kldf+=" -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
done
(cd "$mod" && go build -trimpath -ldflags "$kldf" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ./cmd/etcd)
phase compile-k8s-etcd

hv=helm.sh/helm/v3
tldf="-s -w -X $hv/internal/version.version=$HELM_VERSION -X $hv/internal/version.gitTreeState=clean"
# helm's Makefile sets the default capabilities from its client-go minor.
tldf+=" -X $hv/pkg/chartutil.k8sVersionMajor=1 -X $hv/pkg/chartutil.k8sVersionMinor=$minor"
tldf+=" -X $hv/pkg/lint/rules.k8sVersionMajor=1 -X $hv/pkg/lint/rules.k8sVersionMinor=$minor"
tldf+=" -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
(cd "$mod/tools" && go build -trimpath -ldflags "$tldf" -o "$tmp/" \
  helm.sh/helm/v3/cmd/helm sigs.k8s.io/kwok/cmd/kwok)
phase compile-helm-kwok

kwok_dir=$(cd "$mod/tools" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
for s in "${stages[@]}"; do
  install -m 0644 "$kwok_dir/kustomize/stage/$s.yaml" "$tmp/kwok-stages/"
done

# Smoke tests: every binary runs and reports the pinned version.
check() { # check <name> <expected substring> <cmd...>
  local name=$1 want=$2 got; shift 2
  got=$("$@" 2>&1) || die "$name smoke test failed: $got"
  grep -qF -- "$want" <<<"$got" || die "$name: expected '$want' in: $got"
  log "ok $name: $(head -1 <<<"$got")"
}
check kube-apiserver "Kubernetes $K8S_VERSION" "$tmp/kube-apiserver" --version
check kube-controller-manager "Kubernetes $K8S_VERSION" "$tmp/kube-controller-manager" --version
check kube-scheduler "Kubernetes $K8S_VERSION" "$tmp/kube-scheduler" --version
check kubectl "$K8S_VERSION" "$tmp/kubectl" version --client
check etcd "etcd Version: ${ETCD_VERSION#v}" "$tmp/etcd" --version
check kwok "${KWOK_VERSION#v}" "$tmp/kwok" --version
check helm "$HELM_VERSION" "$tmp/helm" version --short
{
  echo "# built $(date -u +%FT%TZ) by hack/k8s-bins.sh ($(go version | awk '{print $3}'))"
  for b in "${bins[@]}"; do
    go version -m "$tmp/$b" | grep -E '^\s+(mod|dep)\s+(k8s\.io/(kubernetes|api|client-go)|go\.etcd\.io/etcd/server/v3|helm\.sh/helm/v3|sigs\.k8s\.io/kwok|google\.golang\.org/grpc)\s' |
      awk -v b="$b" '{print b, $2, $3}'
  done
} >"$tmp/BUILDINFO"
phase smoke-test
echo "# phases: $phases" >>"$tmp/BUILDINFO"

rm -rf "$out"
mv "$tmp" "$out"   # atomic: a killed build never leaves a half-filled cache dir
log "done in $(( $(date +%s) - t0 ))s: $(du -sh "$out" | cut -f1) in $out"
# LWS after the move: should its build fail, the binaries above stay cached.  #lws
lws_ensure "$out"  #lws
grove_ensure "$out"  #grove

# Keep only the newest two bin-* dirs (plus nothing half-built from old keys),
# but never one whose binaries are running (a cluster that is still up keeps
# DYNAMO_E2E_BIN pointing at it).
in_use() {
  local e t
  for e in /proc/[0-9]*/exe; do
    t=$(readlink "$e" 2>/dev/null) || continue
    [[ $t == "$1/"* ]] && return 0
  done
  return 1
}
find "$cache" -maxdepth 1 -name 'bin-*.tmp' ! -path "$tmp" -exec rm -rf {} +
mapfile -t old < <(find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'bin-*' ! -name '*.tmp' -printf '%T@ %p\n' |
  sort -rn | tail -n +3 | cut -d' ' -f2-)
for d in "${old[@]}"; do
  if in_use "$d"; then log "keeping $d (in use by a running process)"; continue; fi
  log "pruning $d"
  rm -rf "$d"
done

echo "$out"
