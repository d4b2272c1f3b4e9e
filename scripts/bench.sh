#!/usr/bin/env bash
# `make bench`: one bounded run on the local stack; results in docs/bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
load_env
build_release clearance-bench
target/release/clearance-bench "$@"
