#!/usr/bin/env bash
# The whole test suite: formatting, supply-chain policy (cargo deny), lints, CRD drift, unit and
# integration tests, the end-to-end tests against a real kube-apiserver (hack/e2e.sh), and a
# short chaos run (hack/chaos.sh 30 60, its own line). Ends with one summary line counting every
# test that ran.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
results=$(mktemp)
trap 'rm -f "$results"' EXIT

# Runs a test command, keeping its "test result:" lines for the summary.
counted() {
  "$@" 2>&1 | tee >(grep --line-buffered '^test result:' >>"$results")
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "actionlint (.github/workflows; checks run: scripts with shellcheck when it is installed)"
actionlint=$(hack/install-actionlint.sh | tail -n 1) # the pinned version, built once
"$actionlint" .github/workflows/*.yml

step "cargo deny check licenses bans sources (policy: deny.toml)"
# Advisories are left out: their database comes from GitHub, which this machine cannot
# reach; the GitHub workflow runs the full `cargo deny check`.
hack/install-cargo-deny.sh # the pinned version, built once
cargo deny --locked check licenses bans sources

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "CRD drift check (charts/crds/templates must be what crdgen writes)"
cargo run --quiet --locked -p dynamo-api --bin crdgen -- --check

step "helm lint (both charts) and the platform chart README (helm-docs)"
bin=$(hack/k8s-bins.sh | tail -n 1)
chart_copy=$(mktemp -d)
trap 'rm -f "$results"; rm -rf "$chart_copy"' EXIT
"$bin/helm" lint --strict charts/crds
"$bin/helm" lint --strict "$(hack/chart-offline.sh "$chart_copy")" --set nats.enabled=false --set etcd.enabled=false
hack/helm-docs.sh --check

step "cargo test (unit and integration)"
counted cargo test --workspace --locked --exclude dynamo-e2e

step "end-to-end tests on a local control plane"
counted hack/e2e.sh

step "chaos run: 30 graphs, 60 s of faults (hack/chaos.sh)"
hack/chaos.sh 30 60

sleep 0.2 # let the tee'd grep flush
awk '{for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }}
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$results"
