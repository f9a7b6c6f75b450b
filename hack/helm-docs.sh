#!/usr/bin/env bash
# charts/platform/README.md from README.md.gotmpl and values.yaml, by helm-docs (built once
# from its Go module into the tool cache, like the other pinned tools).
#
#   hack/helm-docs.sh           rewrite charts/platform/README.md
#   hack/helm-docs.sh --check   fail if the committed README is not what helm-docs writes
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Pinned here, not in versions.env, whose contents key the Kubernetes tool cache.
HELM_DOCS_VERSION=v1.14.2
export GOTOOLCHAIN=local
cache=${DYNAMO_E2E_CACHE:-$HOME/.cache/dynamo-e2e}/helm-docs-$HELM_DOCS_VERSION
if [[ ! -x $cache/helm-docs ]]; then
  echo "building helm-docs $HELM_DOCS_VERSION into $cache" >&2
  mkdir -p "$cache"
  GOBIN="$cache" CGO_ENABLED=0 go install "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
fi

generate() { # $1: a directory holding a copy of the platform chart as "platform"
  (cd "$1" && "$cache/helm-docs" --chart-search-root . --chart-to-generate platform \
      --template-files README.md.gotmpl --log-level warning)
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$repo/charts/platform" "$work/platform"
generate "$work"
if [[ ${1:-} == --check ]]; then
  if ! diff -u "$repo/charts/platform/README.md" "$work/platform/README.md"; then
    echo "charts/platform/README.md is stale: run hack/helm-docs.sh" >&2
    exit 1
  fi
  echo "charts/platform/README.md is current" >&2
else
  cp "$work/platform/README.md" "$repo/charts/platform/README.md"
  echo "wrote charts/platform/README.md" >&2
fi
