#!/usr/bin/env bash
# Install (or reuse) upstream Dynamo's runtime from PyPI for the e2e tests and the demo: what
# the node agent runs for pods whose main container runs `python3 -m dynamo.frontend` or
# `python3 -m dynamo.mocker` (see e2e/node-agent/src/runtime.rs).
#
#   RUNTIME=$(hack/dynamo-runtime.sh | tail -1)
#
# The directory, outside the clone and keyed by everything that determines it, holds:
#   venv/      ai-dynamo 1.6.1 + ai-dynamo-runtime 1.6.1 and the pinned dependencies
#              (dynamo-runtime/requirements.lock, installed with --no-deps)
#   model/     a tiny offline model: llama-like config, no weights, a word-level tokenizer of
#              2304 entries (the mocker emits token ids 1000..1999, which must all decode)
#   image/     what a Dynamo image adds besides the venv: /workspace (upstream's graphs point
#              --planner-profile-data into it) and site/ (the aisimulate_core stand-in)
# Nothing is downloaded at test time; only this script talks to the package registry.
#
# Env: DYNAMO_E2E_CACHE (default ~/.cache/dynamo-e2e), PYTHON (default python3, >= 3.10).
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src="$hack/dynamo-runtime"
python=${PYTHON:-python3}

log() { printf '[dynamo-runtime %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v "$python" >/dev/null || die "$python not found (Python >= 3.10 runs upstream's runtime)"
cache=${DYNAMO_E2E_CACHE:-$HOME/.cache/dynamo-e2e}
key=$( { "$python" --version 2>&1; cat "${BASH_SOURCE[0]}" "$src/requirements.lock" "$src/tiny_model.py";
         find "$src/aisimulate_core" -name '*.py' -print0 | sort -z | xargs -0 cat; } |
      sha256sum | cut -c1-16)
out="$cache/dynamo-runtime-1.6.1-$key"

if [[ -f $out/.complete ]]; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.runtime.lock"
if ! flock -n 9; then
  log "another install holds $cache/.runtime.lock; waiting"
  flock 9
fi
if [[ -f $out/.complete ]]; then
  echo "$out"
  exit 0
fi

rm -rf "$out" "$out.tmp"
tmp="$out.tmp"
log "creating $out"
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  --only-binary=:all: -r "$src/requirements.lock" >&2 || die "pip install failed"
# Every import the mocker and the frontend make at start must resolve.
PYTHONPATH="$src" "$tmp/venv/bin/python" -c 'import dynamo.frontend, dynamo.mocker.main, dynamo.planner.core' ||
  die "the installed runtime does not import"

"$tmp/venv/bin/python" "$src/tiny_model.py" "$tmp/model"

site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The venv is moved into place below, so links point at the final location.
final_site=${site/#$tmp/$out}
mkdir -p "$tmp/image/site" "$tmp/image/workspace/tests/planner" "$tmp/image/workspace/components/src"
cp -r "$src/aisimulate_core" "$tmp/image/site/"
# Upstream's images are a checkout at /workspace: older graphs name
# tests/planner/profiling_results, newer ones components/src/dynamo/planner/tests/data/...
ln -s "$final_site/dynamo/planner/tests/data/profiling_results" "$tmp/image/workspace/tests/planner/profiling_results"
ln -s "$final_site/dynamo" "$tmp/image/workspace/components/src/dynamo"

touch "$tmp/.complete"
mv "$tmp" "$out"
log "ready: $(du -sh "$out" | cut -f1)"
echo "$out"
