#!/usr/bin/env bash
# Builds actionlint (the GitHub workflow linter) at the pinned version from its Go module into
# the tool cache, once, and prints the binary's path as the last line of stdout. hack/test.sh
# lints .github/workflows with it.
#
#   actionlint=$(hack/install-actionlint.sh | tail -n 1); "$actionlint" .github/workflows/*.yml
#
# Env: DYNAMO_E2E_CACHE (default ~/.cache/dynamo-e2e), the cache hack/k8s-bins.sh uses.
set -euo pipefail

# Pinned here, not in versions.env, whose contents key the Kubernetes tool cache (a pin
# change there would rebuild the whole control plane).
ACTIONLINT_VERSION=v1.7.12

dir=${DYNAMO_E2E_CACHE:-$HOME/.cache/dynamo-e2e}/actionlint-$ACTIONLINT_VERSION
bin="$dir/actionlint"
if [[ -x $bin ]]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "go not found in PATH (needed to build actionlint)" >&2; exit 1; }
# Same rules as the other pinned Go tools: never download another toolchain, no VCS stamping,
# a static binary. A temporary GOBIN and a rename keep a killed build from leaving a binary
# that looks finished.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
mkdir -p "$(dirname "$dir")"
tmp=$(mktemp -d "$dir.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building actionlint $ACTIONLINT_VERSION into $dir" >&2
module=github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION
if ! GOBIN="$tmp" go install "$module"; then
  echo "go install $module failed; retrying once in 10s" >&2 # a transient proxy error
  sleep 10
  GOBIN="$tmp" go install "$module"
fi

got=$("$tmp/actionlint" -version 2>&1) || { echo "actionlint smoke test failed: $got" >&2; exit 1; }
grep -qF -- "${ACTIONLINT_VERSION#v}" <<<"$got" ||
  { echo "actionlint: expected version ${ACTIONLINT_VERSION#v} in: $got" >&2; exit 1; }

mkdir -p "$dir"
mv -f "$tmp/actionlint" "$bin" # a rename within one filesystem: atomic
echo "$bin"
