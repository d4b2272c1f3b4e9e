#!/usr/bin/env bash
# The walk-through: stack up, demo ledger loaded (twice: the second load adds
# nothing), the API served, and one search of the heavy treaty, a hit, a page
# and a sorted view, with their timings; then a clearance of a selection
# against a check, its replay, a stale refusal and a reversal.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
rows="${ROWS:-500000}"

echo "== 1. local stack"
bash scripts/up.sh
load_env
build_release clearance-loader clearance-local

echo "== 1b. the reference grid (web/): npm ci from the lockfile, unit tests, build into web/dist"
bash scripts/web.sh

echo "== 2. seed $rows generated rows (heaviest treaty: 32% of them)"
target/release/clearance-loader seed --rows "$rows"

echo "== 3. seed again: idempotent, nothing added, no scope version moves"
target/release/clearance-loader seed --rows "$rows"

echo "== 4. what the ledger holds"
target/release/clearance-loader summary

echo "== 5. the API on http://$CLEARANCE_ADDR (stopped at the end)"
target/release/clearance-local > .dev/demo-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
wait_for 30 curl -s -o /dev/null "http://$CLEARANCE_ADDR/v1/health" || { cat .dev/demo-server.log; exit 1; }

api() { # method path [body [idempotency key]]
  curl -s -X "$1" "http://$CLEARANCE_ADDR$2" -H 'content-type: application/json' \
    -H "x-dev-operator: demo-$$" -H 'x-dev-treaties: *' ${3:+--data "$3"} \
    ${4:+-H "Idempotency-Key: $4"} \
    -w '\n%{http_code} %{time_total} %header{idempotency-replayed}\n'
}
field() { # name < answer
  python3 -c 'import json,sys; print(json.loads(sys.stdin.read().rsplit("\n", 2)[0])[sys.argv[1]])' "$1"
}
show() { python3 scripts/show_answer.py "$1"; }
search='{"treaty_ids": ["TR-0001"], "period_from": "2021-01", "period_to": "2025-12"}'
api POST /v1/searches "$search" > .dev/demo-search.json
show "search TR-0001 (cold)" < .dev/demo-search.json
api POST /v1/searches "$search" | show "same search again (warm)"
id=$(field snapshot_id < .dev/demo-search.json)
api GET "/v1/searches/$id/pages/7" | show "page 7"
api GET "/v1/searches/$id/pages/0?sort=amount:desc" | show "sorted by amount desc (view built from the snapshot)"
api GET "/v1/searches/$id/pages/1?sort=amount:desc" | show "its page 1 (view cached)"
api GET "/v1/searches/$id/pages/0?cedent_id=CED-003&currency=EUR" | show "sub-filter CED-003, EUR"

echo "== 6. Mark Cleared: a selection of a fresh search, against a check"
small='{"treaty_ids": ["TR-0002"], "period_from": "2024-01", "period_to": "2024-03", "currency": "USD", "status": "open"}'
api POST /v1/searches "$small" > .dev/demo-small.json
show "search TR-0002, Q1 2024, open USD" < .dev/demo-small.json
small_id=$(field snapshot_id < .dev/demo-small.json)
# The first five rows of page 0, and a check for exactly their total.
body=$(python3 scripts/demo_clearance.py 5 < .dev/demo-small.json)
key="demo-$$-clear-1"
api POST /v1/clearances "$body" "$key" > .dev/demo-clearance.json
show "POST /v1/clearances (Idempotency-Key $key)" < .dev/demo-clearance.json
clearance=$(field clearance_id < .dev/demo-clearance.json)
api POST /v1/clearances "$body" "$key" | show "the same click again: the stored answer, nothing posted twice"
api GET "/v1/clearances/$clearance" | show "GET /v1/clearances/$clearance"
api GET "/v1/searches/$small_id/pages/0" | show "the snapshot's page now says stale"
api POST /v1/clearances "$body" "demo-$$-clear-2" | show "the same rows from the old snapshot, new key: refused"
api POST "/v1/clearances/$clearance/reversal" '{"reason": "demo: check returned by the bank"}' "demo-$$-reverse-1" \
  | show "reversal: a new ledger entry, the rows open again"
api POST "/v1/clearances/$clearance/reversal" '{"reason": "again"}' "demo-$$-reverse-2" | show "a second reversal"

echo "== 7. a batch: every open USD row of the heavy treaty, cleared as one job"
heavy='{"treaty_ids": ["TR-0001"], "period_from": "2021-01", "period_to": "2025-12", "currency": "USD", "status": "open"}'
api POST /v1/searches "$heavy" > .dev/demo-heavy.json
show "search TR-0001, all periods, open USD" < .dev/demo-heavy.json
body=$(python3 scripts/demo_clearance.py all < .dev/demo-heavy.json)
started=$(date +%s.%N)
api POST /v1/clearances "$body" "demo-$$-batch-1" > .dev/demo-job.json
show "POST /v1/clearances: above the sync limit, so a job, answered at once" < .dev/demo-job.json
job=$(field job_id < .dev/demo-job.json)
last=""
for _ in $(seq 1 1200); do   # at most 5 minutes
  api GET "/v1/jobs/$job" > .dev/demo-job.json
  line=$(python3 scripts/show_answer.py "  progress" < .dev/demo-job.json | sed -n 2p)
  [ "$line" != "$last" ] && echo "$line" && last="$line"
  state=$(field state < .dev/demo-job.json)
  [ "$state" != "running" ] && break
  sleep 0.25
done
python3 -c "import sys; print(f'  job {sys.argv[1]} {sys.argv[2]} in {float(sys.argv[4]) - float(sys.argv[3]):.1f} s end to end')" \
  "$job" "$state" "$started" "$(date +%s.%N)"
batch_clearance=$(field clearance_id < .dev/demo-job.json)
api GET "/v1/clearances/$batch_clearance" | show "the batch's clearance"
api POST "/v1/clearances/$batch_clearance/reversal" '{"reason": "demo: put the heavy treaty back for the next run"}' \
  "demo-$$-batch-reverse" | show "its reversal (so the demo runs again on the same data)"

echo "== 8. the operator screen"
echo "  web/dist is built: 'make serve' and open http://$CLEARANCE_ADDR/app/ (Operator: any name; Treaty TR-0001;"
echo "  Search, sort by a header click, shift-click for a second key, filter in the boxes under the headers,"
echo "  Select all in view, Mark Cleared)."
