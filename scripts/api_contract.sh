#!/usr/bin/env bash
# The OpenAPI document against the server (DESIGN.md, Production edges):
# schemathesis generates positive and negative requests from openapi.yaml
# and runs every check against the local server over a seeded ledger. A
# request the schema allows must be accepted; one it refuses must be a 4xx;
# every answer must be one the document lists. Bounded: a fixed number of
# examples per operation, a fixed seed. Its failures fail `make test`.
#
# Called by scripts/test.sh after the cargo tests (which build the debug
# server); runs alone with `bash scripts/api_contract.sh` after `make up`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
load_env

examples="${API_CONTRACT_EXAMPLES:-40}"
db="clearance_api_contract"
admin_url=$(database_url "$db")

# A ledger of its own, rebuilt each run: the clearances schemathesis posts
# never meet another run's.
psql "$(maintenance_url)" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
target/release/clearance-loader --database-url "$admin_url" migrate >/dev/null
target/release/clearance-loader --database-url "$admin_url" seed --rows 20000 --seed 7 >/dev/null

server=target/debug/clearance-local
[ -x "$server" ] || cargo build --quiet -p clearance-local
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CLEARANCE_READER_DATABASE_URL=$(as_role clearance_reader "$admin_url") \
CLEARANCE_APP_DATABASE_URL=$(as_role clearance_app "$admin_url") \
CLEARANCE_TABLE="clearance-api-contract-$port" \
CLEARANCE_EVENT_BUS="clearance-api-contract" \
CLEARANCE_ADDR="127.0.0.1:$port" \
RUST_LOG=warn \
  "$server" > .dev/api-contract-server.log 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
server_up() { curl -s -o /dev/null "http://127.0.0.1:$port/v1/jobs"; }
wait_for 60 server_up || { echo "api contract: the local server did not start (see .dev/api-contract-server.log)" >&2; exit 1; }

# ignored_auth is left out: authentication is API Gateway's JWT authorizer
# in AWS (tests/production_edges feed its events); the local server takes
# any dev operator name as an identity, so there is no invalid one to refuse.
# The document as the local server is called: its identity is the dev
# headers (x-dev-operator as the API key), where API Gateway takes a JWT.
python3 - openapi.yaml .dev/openapi.local.yaml <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
doc["components"]["securitySchemes"] = {
    "devOperator": {"type": "apiKey", "in": "header", "name": "x-dev-operator"}}
doc["security"] = [{"devOperator": []}]
yaml.safe_dump(doc, open(sys.argv[2], "w"), sort_keys=False)
PY

echo "== api contract (schemathesis, $examples examples an operation)"
PYTHONPATH=scripts/api_contract SCHEMATHESIS_HOOKS=hooks \
  .dev/venv/bin/schemathesis run .dev/openapi.local.yaml \
  --url "http://127.0.0.1:$port" \
  --header "x-dev-operator: api-contract" \
  --header "x-dev-treaties: *" \
  --checks all \
  --exclude-checks ignored_auth \
  --mode all \
  --max-examples "$examples" \
  --seed 1 \
  --workers 2 \
  --request-timeout 30 \
  --no-color
