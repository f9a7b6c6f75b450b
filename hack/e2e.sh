#!/usr/bin/env bash
# End-to-end tests against a real local control plane, started fresh for this run and
# stopped at the end (whatever happens). Everything that needs the network (Go module proxy,
# crates.io) happens before the cluster's network namespace is entered.
#
#   hack/e2e.sh [cargo test args...]     e.g. hack/e2e.sh control_plane
#
# To run against a cluster you keep up (hack/cluster.sh up), use instead:
#   hack/cluster.sh exec cargo test -p dynamo-e2e
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "Kubernetes tools (built once, then reused from the cache)"
bin=$(hack/k8s-bins.sh | tail -n 1)
[[ -x $bin/kube-apiserver ]] || { echo "e2e: no kube-apiserver in '$bin'" >&2; exit 1; }

step "Dynamo runtime from PyPI (installed once, then reused from the cache)"
runtime=$(hack/dynamo-runtime.sh | tail -n 1)
[[ -f $runtime/.complete ]] || { echo "e2e: no Dynamo runtime in '$runtime'" >&2; exit 1; }

step "Building our binaries and the e2e tests"
cargo build --locked --workspace --bins
cargo test --locked -p dynamo-e2e --no-run

# A name of our own so a concurrent demo or developer cluster is never touched.
name="e2e-$$"
step "Starting control plane '$name' in a private network namespace and running the tests"
unshare --net env DYNAMO_E2E_IN_NETNS=1 DYNAMO_E2E_CLUSTER="$name" DYNAMO_E2E_BIN="$bin" \
  DYNAMO_E2E_RUNTIME="$runtime" \
  DYNAMO_E2E_STATE="${TMPDIR:-/tmp}/dynamo-e2e-$name" \
  bash -euo pipefail -c '
    trap "hack/cluster.sh down" EXIT
    hack/cluster.sh up
    eval "$(hack/cluster.sh env)"
    cargo test --offline --locked -p dynamo-e2e -- "$@"
  ' e2e "$@"
