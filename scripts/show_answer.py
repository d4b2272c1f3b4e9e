"""Prints one API answer of the demo: curl's body, then a line 'status seconds'."""
import json
import sys

text = sys.stdin.read().rstrip("\n").split("\n")
status, secs, *replayed = text[-1].split()
body = json.loads("\n".join(text[:-1]))
label = sys.argv[1]
print(f"{label}: HTTP {status} in {float(secs) * 1000:.0f} ms (client side)"
      + (" [Idempotency-Replayed: true]" if replayed == ["true"] else ""))
if isinstance(body.get("error"), str):
    print(f"  {body['error']}: {body['message']}")
if "cache" in body:
    t = body["timings_ms"]
    print(f"  snapshot {body['snapshot_id'][:16]}..., cache {body['cache']}, "
          f"{body['row_count']} rows in {body['page_count']} pages")
    if body["cache"] == "miss":
        print(f"  server: SQL {t['sql']:.0f} ms, encode+compress {t['encode']:.0f} ms, store {t['store']:.0f} ms")
    print("  totals: " + ", ".join(f"{x['currency']} {x['amount']} ({x['count']})" for x in body["totals"]))
page = body.get("page", body)
if "rows" in page:
    print(f"  page {page['number']} of {page['page_count']}, {len(page['rows'])} rows, stale {page['stale']}, first rows:")
    for r in page["rows"][:3]:
        print(f"    {r['id'][:8]} {r['cedent_id']} {r['accounting_period']} {r['amount']:>14} {r['currency']} v{r['row_version']}")
if "moved_ids" in body:
    print(f"  moved since the snapshot: {len(body['moved_ids'])} rows, e.g. {body['moved_ids'][0][:8]}")
if "clearance_id" in body and "check" in body:
    check = body["check"]
    print(f"  clearance {body['clearance_id']} {body['state']}: {body['row_count']} rows of {body['treaty_id']}, "
          f"cleared {body['cleared_total']} {body['currency']}, difference {body['difference']}")
    print(f"  check {check['number']} {check['amount']} {check['currency']} received {check['received_on']}, "
          f"by {body['operator_id']}, snapshot {body['snapshot_id'][:16]}...")
    for line in body["journal"]:
        print(f"    {line['account']:<15} debit {line['debit']:>14} credit {line['credit']:>14}")
    if body.get("reversal"):
        r = body["reversal"]
        print(f"  reversed by {r['operator_id']}: {r['reason']}")
if "job_id" in body:
    print(f"  job {body['job_id']} {body['state']}: {body['chunks_done']}/{body['chunks_total']} chunks, "
          f"{body['row_count']} rows" + (f", clearance {body['clearance_id']}" if body.get("clearance_id") else "")
          + (f", error {body['error']['code']}: {body['error']['message']}" if body.get("error") else ""))
