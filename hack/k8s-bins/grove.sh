# shellcheck shell=bash disable=SC2154 # $mod, $cache: set by k8s-bins.sh
# Sourced by hack/k8s-bins.sh (uses its log, die, $mod, $cache): Grove's CRDs (grove.io
# PodCliqueSet, PodClique, PodCliqueScalingGroup) from the Go module
# github.com/ai-dynamo/grove/operator/api (GROVE_API_VERSION in versions.env, pinned by the
# wrapper module ./grove), for hack/cluster.sh (DYNAMO_E2E_GROVE=1). Nothing is compiled: the
# YAML files are copied out of the downloaded module. Grove's operator is not part of it.
#
# Only the CRDs Dynamo uses: the module also ships grove.io_clustertopologies.yaml (the
# topology the Grove operator itself writes for topology-aware scheduling, which Dynamo 0.9.0
# does not use), and PodGangs (scheduler.grove.io) live in another module
# (github.com/ai-dynamo/grove/scheduler/api); Grove's operator creates those, not Dynamo.
#
# Cache layout: the same scheme as LWS (k8s-bins/lws.sh), so adding or bumping Grove changes
# neither the bin dir's key nor LWS's.
#  * The bin dir's key and LWS's leave out the lines ending in "#grove" (the pin in
#    versions.env, the hooks in k8s-bins.sh); this file and ./grove are part of neither.
#  * The CRDs are copied into $cache/grove-<version>-<key>/grove-crds, keyed by
#    ./grove/go.{mod,sum} and this file (nothing is built, so no toolchain setting matters),
#    under a lock of their own, and hard-linked into <bin dir>/grove-crds. "Up to date" =
#    that dir holds exactly this key's files (same inode), a stat per file and run.

grove_key=$(cat "$mod/grove/go.mod" "$mod/grove/go.sum" "$mod/grove.sh" | sha256sum | cut -c1-16)
grove_out="$cache/grove-$GROVE_API_VERSION-$grove_key"
grove_module=github.com/ai-dynamo/grove/operator/api
# The CRDs' plural names; the files are upstream's names, grove.io_<plural>.yaml.
grove_plurals=(podcliquesets podcliques podcliquescalinggroups)
grove_files=()
for p in "${grove_plurals[@]}"; do grove_files+=("grove.io_$p.yaml"); done
unset p

grove_complete() {
  local f
  for f in "${grove_files[@]}"; do [[ -s $grove_out/grove-crds/$f ]] || return 1; done
}

grove_linked() { # grove_linked <bin dir>: its grove-crds holds exactly this key's files (or copies)
  local f n=0
  for f in "${grove_files[@]}"; do
    [[ $1/grove-crds/$f -ef $grove_out/grove-crds/$f ]] ||
      cmp -s "$1/grove-crds/$f" "$grove_out/grove-crds/$f" 2>/dev/null || return 1
  done
  for f in "$1"/grove-crds/*; do [[ -e $f ]] && n=$((n + 1)); done
  ((n == ${#grove_files[@]}))
}

grove_build() { # fill $grove_out unless it is complete (the caller holds the Grove lock)
  grove_complete && return 0
  command -v go >/dev/null || die "go not found in PATH"
  local tmp="$grove_out.tmp" t0 f src version
  log "fetching Grove CRDs ($grove_module $GROVE_API_VERSION) into $grove_out"
  rm -rf "$tmp"
  mkdir -p "$tmp/grove-crds"
  t0=$(date +%s)
  # As for the other modules: no toolchain download, the committed go.mod/go.sum only (the
  # download is checked against go.sum).
  local gov=(env -C "$mod/grove" GOTOOLCHAIN="$GOTOOLCHAIN" GOFLAGS=-mod=readonly)
  if ! "${gov[@]}" go mod download "$grove_module"; then # retry once, as for the builds
    log "go mod download failed in $mod/grove; retrying once in 10s"
    sleep 10
    "${gov[@]}" go mod download "$grove_module"
  fi
  version=$("${gov[@]}" go list -m -f '{{.Version}}' "$grove_module")
  [[ $version == "$GROVE_API_VERSION" ]] ||
    die "$mod/grove requires $grove_module $version, versions.env pins $GROVE_API_VERSION (run hack/k8s-bins/regen.sh)"
  src=$("${gov[@]}" go list -m -f '{{.Dir}}' "$grove_module")
  local p
  for p in "${grove_plurals[@]}"; do
    f=grove.io_$p.yaml
    install -m 0644 "$src/core/v1alpha1/crds/$f" "$tmp/grove-crds/$f"
    grep -qx "  name: $p.grove.io" "$tmp/grove-crds/$f" || die "$f: not the CRD $p.grove.io"
  done
  {
    echo "# fetched $(date -u +%FT%TZ) by hack/k8s-bins.sh"
    "${gov[@]}" go list -m -f '{{.Path}} {{.Version}}' "$grove_module"
    (cd "$tmp/grove-crds" && sha256sum "${grove_files[@]}")
  } >"$tmp/BUILDINFO"

  rm -rf "$grove_out"
  mv "$tmp" "$grove_out" # atomic, as for the bin dir
  log "Grove CRDs done in $(( $(date +%s) - t0 ))s: $(du -sh "$grove_out" | cut -f1) in $grove_out"

  # Keep the newest two Grove dirs (bin dirs hold hard links).
  local old d
  find "$cache" -maxdepth 1 -name 'grove-*.tmp' ! -path "$tmp" -exec rm -rf {} +
  mapfile -t old < <(find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'grove-*' ! -name '*.tmp' -printf '%T@ %p\n' |
    sort -rn | tail -n +3 | cut -d' ' -f2-)
  for d in "${old[@]}"; do
    log "pruning $d"
    rm -rf "$d"
  done
}

grove_ensure() { # grove_ensure <bin dir>: fetch the CRDs if needed and link them into <bin dir>/grove-crds
  grove_linked "$1" && return 0
  mkdir -p "$cache"
  exec 7>"$cache/.build-grove.lock"
  if ! flock -n 7; then
    log "another build holds $cache/.build-grove.lock; waiting"
    flock 7
  fi
  if ! grove_linked "$1"; then
    grove_build
    local d="$1/grove-crds" f
    mkdir -p "$d"
    for f in "${grove_files[@]}"; do
      [[ $d/$f -ef $grove_out/grove-crds/$f ]] && continue
      # Link (or copy, where the cache spans filesystems) beside it, then rename over: atomic.
      ln -f "$grove_out/grove-crds/$f" "$d/.$f.$$" 2>/dev/null || cp -f "$grove_out/grove-crds/$f" "$d/.$f.$$"
      mv -f "$d/.$f.$$" "$d/$f"
    done
    # Files of another version (another set of CRDs) go: hack/cluster.sh applies the whole dir.
    for f in "$d"/*; do
      [[ -e $f ]] || continue
      [[ " ${grove_files[*]} " == *" $(basename "$f") "* ]] || rm -f "$f"
    done
    log "Grove $GROVE_API_VERSION CRDs: ${grove_files[*]} in $d (from $grove_out)"
  fi
  exec 7>&-
}
