#!/usr/bin/env bash
# The reference grid end to end (DESIGN.md, "The reference grid"): Debian's
# Chromium driven by playwright-core (never a downloaded browser) against the
# local server serving web/dist at /app/, over a ledger of its own. Search the
# heavy treaty, sort, filter, a stale refusal, select all in view and Mark
# Cleared as a batch job with its progress to "succeeded".
#
# Called by scripts/test.sh; alone with `bash scripts/web_e2e.sh` after
# `make up`. SCREENSHOTS=docs/screenshots writes the main states there.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
load_env

bash scripts/web.sh --browser
db="clearance_web_e2e"
admin_url=$(database_url "$db")
psql "$(maintenance_url)" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
# The workspace's debug binaries, as make test builds them (a no-op when up
# to date; building one package alone would unify features differently).
cargo build --workspace --bins --quiet
loader=target/debug/clearance-loader
"$loader" --database-url "$admin_url" migrate >/dev/null
"$loader" --database-url "$admin_url" seed --rows 20000 --seed 5 >/dev/null

server=target/debug/clearance-local
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# A small sync limit: a view of a few hundred rows is cleared as a job.
CLEARANCE_READER_DATABASE_URL=$(as_role clearance_reader "$admin_url") \
CLEARANCE_APP_DATABASE_URL=$(as_role clearance_app "$admin_url") \
CLEARANCE_TABLE="clearance-web-e2e-$port" \
CLEARANCE_EVENT_BUS="clearance-web-e2e" \
CLEARANCE_ADDR="127.0.0.1:$port" \
CLEARANCE_SYNC_ROWS_MAX=200 \
CLEARANCE_WEB_DIST=web/dist \
RUST_LOG=warn \
  "$server" > .dev/web-e2e-server.log 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
server_up() { curl -sf -o /dev/null "http://127.0.0.1:$port/app/"; }
wait_for 60 server_up || { echo "web e2e: the local server did not serve /app/ (see .dev/web-e2e-server.log)" >&2; exit 1; }

echo "== reference grid end to end (Chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'))"
APP_URL="http://127.0.0.1:$port" SCREENSHOTS="${SCREENSHOTS:-}" node web/e2e/grid.e2e.mjs
