#!/usr/bin/env bash
# The whole test suite: formatting, lints, CRD drift, unit and integration tests.
# Usage: hack/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "CRD drift check (charts/crds/templates must be what crdgen writes)"
cargo run --quiet --locked -p dynamo-api --bin crdgen -- --check

step "cargo test"
cargo test --workspace --locked
