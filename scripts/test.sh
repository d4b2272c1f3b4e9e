#!/usr/bin/env bash
# `make test`: formatting, lints and every test, with the stack they need.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

rustup component add rustfmt clippy >/dev/null 2>&1 || true
bash scripts/up.sh
load_env

# Test databases of earlier runs (a failed test keeps its own for
# inspection) and templates of older migrations.
drop_test_databases

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
cargo test --workspace --no-fail-fast
