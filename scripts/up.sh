#!/usr/bin/env bash
# Brings the local stack up, idempotently, and writes .dev/env:
# - PostgreSQL: DATABASE_URL when set; otherwise 127.0.0.1:5432 (started if
#   it is down, installed from Debian's packages if it is missing), database
#   `clearance` created if missing, migrations applied.
# - DynamoDB: moto's server from a project venv, on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

mkdir -p .dev
ensure_postgres
ensure_moto

admin_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/clearance}"
# The same server and database as another role (trust authentication here).
as_role() {
  python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[2]); host = p.hostname + (f":{p.port}" if p.port else "")
print(u.urlunsplit((p.scheme, sys.argv[1] + "@" + host, p.path, p.query, "")))' "$1" "$2"
}
app_url="${CLEARANCE_APP_DATABASE_URL:-$(as_role clearance_app "$admin_url")}"
reader_url="${CLEARANCE_READER_DATABASE_URL:-$(as_role clearance_reader "$admin_url")}"

build_release clearance-loader
DATABASE_URL="$admin_url" target/release/clearance-loader migrate

cat > .dev/env <<ENV
# Written by scripts/up.sh; source it (set -a; . .dev/env) before other commands.
DATABASE_URL=$admin_url
CLEARANCE_APP_DATABASE_URL=$app_url
CLEARANCE_READER_DATABASE_URL=$reader_url
AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$(cat .dev/moto.port)
AWS_ENDPOINT_URL_EVENTBRIDGE=http://127.0.0.1:$(cat .dev/moto.port)
CLEARANCE_TABLE=${CLEARANCE_TABLE:-clearance-local}
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=local
AWS_SECRET_ACCESS_KEY=local
CLEARANCE_ADDR=${CLEARANCE_ADDR:-127.0.0.1:8080}
ENV
echo "up: PostgreSQL at ${admin_url%%/clearance*}/..., moto on 127.0.0.1:$(cat .dev/moto.port); wrote .dev/env"
