#!/usr/bin/env bash
# The walk-through: stack up, demo ledger loaded (twice, to show the second
# load adds nothing), and a summary of what the ledger holds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
rows="${ROWS:-500000}"

echo "== 1. local stack"
bash scripts/up.sh
load_env
build_release clearance-loader

echo "== 2. seed $rows generated rows (heaviest treaty: 32% of them)"
target/release/clearance-loader seed --rows "$rows"

echo "== 3. seed again: idempotent, nothing added, no scope version moves"
target/release/clearance-loader seed --rows "$rows"

echo "== 4. what the ledger holds"
target/release/clearance-loader summary
