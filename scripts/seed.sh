#!/usr/bin/env bash
# Loads ROWS generated rows in total (idempotent: rows already loaded are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
rows="${1:-500000}"
seed="${2:-1}"
load_env
build_release clearance-loader
target/release/clearance-loader seed --rows "$rows" --seed "$seed"
