#!/usr/bin/env bash
# `make bench`: one bounded run on the local stack; results in docs/bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
load_env
build_release clearance-bench clearance-read clearance-write clearance-jobs clearance-batch
# The reference grid and Debian's Chromium, for its figures.
bash scripts/web.sh --browser
target/release/clearance-bench "$@"
