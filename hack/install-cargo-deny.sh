#!/usr/bin/env bash
# Installs cargo-deny at the pinned version from crates.io into ~/.cargo/bin, unless that
# version is already there (a warm machine skips the few-minute build). Used by .ci/run and
# the GitHub workflow; deny.toml holds the policy.
set -euo pipefail

CARGO_DENY_VERSION=0.20.2

if [[ $(cargo deny --version 2>/dev/null) == "cargo-deny $CARGO_DENY_VERSION" ]]; then
  exit 0
fi
echo "installing cargo-deny $CARGO_DENY_VERSION (built from crates.io, a few minutes)" >&2
cargo install --locked --quiet "cargo-deny@$CARGO_DENY_VERSION"
