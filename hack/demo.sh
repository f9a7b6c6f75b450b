#!/usr/bin/env bash
# The local demo. Today it builds the platform, regenerates the CRDs and reads every example
# manifest through the typed API; later steps (local cluster, helm install, reconcile) are
# added as they land.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "Building the workspace"
cargo build --workspace --locked

step "Generating the CRDs into charts/crds/templates"
cargo run --quiet --locked -p dynamo-api --bin crdgen
wc -c charts/crds/templates/*.yaml

step "Reading every example manifest through the typed API (round trip must be exact)"
cargo test --quiet --locked -p dynamo-api --test examples
