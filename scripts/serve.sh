#!/usr/bin/env bash
# `make serve`: the API on CLEARANCE_ADDR (127.0.0.1:8080), same handlers as
# the Lambda functions; identity from the dev headers x-dev-operator and
# x-dev-treaties; the reference grid at /app/ once web/dist is built
# (`bash scripts/web.sh`, or `make demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
bash scripts/up.sh
load_env
build_release clearance-local
exec target/release/clearance-local
