# shellcheck shell=bash disable=SC2154 # $hack, $mod, $cache: set by k8s-bins.sh
# Sourced by hack/k8s-bins.sh (uses its log, die, $hack, $mod, $cache): the LeaderWorkerSet
# controller, lws-manager (sigs.k8s.io/lws/cmd, built from the wrapper module ./lws), and
# its CRD, for hack/cluster.sh.
#
# Cache layout (why LWS has a dir of its own): the Kubernetes binaries take many minutes
# to build, so adding or bumping LWS must not change their bin dir's key.
#  * The bin dir's key (k8s-bins.sh) hashes versions.env and k8s-bins.sh WITHOUT the lines
#    ending in "#lws" (the LWS pin and the hooks that call this file); this file and ./lws
#    are not part of it at all.
#  * LWS is built into $cache/lws-<version>-<key>, keyed by ./lws/go.{mod,sum}, this file,
#    and all of versions.env and k8s-bins.sh (a change there may change how it is built:
#    GOFLAGS, the Go toolchain pin) but the lines ending in "#grove" (Grove's CRDs, see
#    k8s-bins/grove.sh: they do not affect LWS), under its own lock.
#  * lws-manager and lws-crd.yaml are then hard-linked into the bin dir, so users keep
#    passing one dir around (DYNAMO_E2E_BIN) and a pruned LWS dir never breaks a bin dir.
#    "Up to date" = the bin dir's files ARE this key's files (same inode), a stat per run.
#
# DYNAMO_E2E_LWS=0 skips LWS entirely (then hack/cluster.sh needs DYNAMO_E2E_LWS=0 too).

lws_key=$(cat "$mod/lws/go.mod" "$mod/lws/go.sum" "$mod/lws.sh" "$hack/versions.env" \
              "$hack/k8s-bins.sh" | grep -v '[#]grove$' | sha256sum | cut -c1-16)
lws_out="$cache/lws-$LWS_VERSION-$lws_key"
lws_files=(lws-manager lws-crd.yaml)

lws_wanted() { [[ ${DYNAMO_E2E_LWS:-1} != 0 ]]; }

lws_complete() {
  [[ -x $lws_out/lws-manager && -s $lws_out/lws-crd.yaml ]]
}

lws_linked() { # lws_linked <bin dir>: it holds this key's files (a copy counts where links fail)
  local f
  for f in "${lws_files[@]}"; do
    [[ $1/$f -ef $lws_out/$f ]] || cmp -s "$1/$f" "$lws_out/$f" 2>/dev/null || return 1
  done
}

lws_phase() { # lws_phase <name>: log the duration of the phase that just ended
  local now; now=$(date +%s)
  log "phase $1: $((now - lws_phase_t))s"
  lws_phases+="$1=$((now - lws_phase_t))s "
  lws_phase_t=$now
}

lws_build() { # build $lws_out unless it is complete (the caller holds the LWS lock)
  lws_complete && return 0
  command -v go >/dev/null || die "go not found in PATH"
  local tmp="$lws_out.tmp" t0
  log "building LWS $LWS_VERSION into $lws_out ($(go version | awk '{print $3}'))"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  t0=$(date +%s)
  lws_phase_t=$t0
  lws_phases=""
  # Same settings as the other builds: no toolchain download, committed go.mod/go.sum only,
  # output independent of the clone's git state.
  local gov=(env -C "$mod/lws" GOTOOLCHAIN="$GOTOOLCHAIN" CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false")
  if ! "${gov[@]}" go mod download; then # retry once: a transient proxy error must not cost a CI run
    log "go mod download failed in $mod/lws; retrying once in 10s"
    sleep 10
    "${gov[@]}" go mod download
  fi
  lws_phase lws-download

  # -o <file>: the package is .../cmd, so `-o dir/` would name the binary "cmd".
  "${gov[@]}" go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/lws/pkg/version.GitVersion=$LWS_VERSION" \
    -o "$tmp/lws-manager" sigs.k8s.io/lws/cmd
  lws_phase compile-lws

  # The plain CRD (config/crd/bases), not the Helm chart's copy, whose conversion webhook
  # points at a Service; copied so hack/cluster.sh needs no GOMODCACHE.
  local src
  src=$("${gov[@]}" go list -m -f '{{.Dir}}' sigs.k8s.io/lws)
  install -m 0644 "$src/config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml" "$tmp/lws-crd.yaml"
  grep -q '^  name: leaderworkersets.leaderworkerset.x-k8s.io$' "$tmp/lws-crd.yaml" ||
    die "lws-crd.yaml: not the LeaderWorkerSet CRD"

  # Smoke test: it runs (there is no --version flag) and embeds the pinned module.
  local info
  "$tmp/lws-manager" --help >/dev/null 2>&1 || die "lws-manager smoke test failed: --help"
  info=$(go version -m "$tmp/lws-manager")
  grep -qE "^\s+(mod|dep)\s+sigs\.k8s\.io/lws\s+$LWS_VERSION\s" <<<"$info" ||
    die "lws-manager: expected sigs.k8s.io/lws $LWS_VERSION in: $info"
  log "ok lws-manager: sigs.k8s.io/lws $LWS_VERSION"
  {
    echo "# built $(date -u +%FT%TZ) by hack/k8s-bins.sh ($(go version | awk '{print $3}'))"
    grep -E '^\s+(mod|dep)\s+(sigs\.k8s\.io/(lws|controller-runtime)|k8s\.io/(api|client-go))\s' <<<"$info" |
      awk '{print "lws-manager", $2, $3}'
  } >"$tmp/BUILDINFO"
  lws_phase smoke-test-lws
  echo "# phases: $lws_phases" >>"$tmp/BUILDINFO"

  rm -rf "$lws_out"
  mv "$tmp" "$lws_out" # atomic, as for the bin dir
  log "LWS done in $(( $(date +%s) - t0 ))s: $(du -sh "$lws_out" | cut -f1) in $lws_out"

  # Keep the newest two LWS dirs. Bin dirs hold hard links, so nothing running or linked
  # breaks when one goes.
  local old d
  find "$cache" -maxdepth 1 -name 'lws-*.tmp' ! -path "$tmp" -exec rm -rf {} +
  mapfile -t old < <(find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'lws-*' ! -name '*.tmp' -printf '%T@ %p\n' |
    sort -rn | tail -n +3 | cut -d' ' -f2-)
  for d in "${old[@]}"; do
    log "pruning $d"
    rm -rf "$d"
  done
}

lws_ensure() { # lws_ensure <bin dir>: build LWS if needed and link its files into <bin dir>
  lws_wanted || return 0
  lws_linked "$1" && return 0
  # Building and linking are serialised on one lock of their own (the bin dir's lock is not
  # taken when only LWS is missing); whoever waited finds the work done.
  mkdir -p "$cache"
  exec 8>"$cache/.build-lws.lock"
  if ! flock -n 8; then
    log "another build holds $cache/.build-lws.lock; waiting"
    flock 8
  fi
  if ! lws_linked "$1"; then
    lws_build
    local f
    for f in "${lws_files[@]}"; do
      [[ $1/$f -ef $lws_out/$f ]] && continue
      # Link (or copy, where the cache spans filesystems) beside it, then rename over: atomic.
      ln -f "$lws_out/$f" "$1/.$f.$$" 2>/dev/null || cp -f "$lws_out/$f" "$1/.$f.$$"
      mv -f "$1/.$f.$$" "$1/$f"
    done
    log "LWS $LWS_VERSION: ${lws_files[*]} in $1 (from $lws_out)"
  fi
  exec 8>&-
}
