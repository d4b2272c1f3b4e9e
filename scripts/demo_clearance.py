"""Builds the demo's clearance request from a search answer on stdin: the
first N rows of page 0, or `all` rows of the snapshot, and a check for
exactly their total."""
import json
import sys
from decimal import Decimal

answer = json.loads(sys.stdin.read().rsplit("\n", 2)[0])
if sys.argv[1] == "all":
    rows = None
    total = sum((Decimal(t["amount"]) for t in answer["totals"] if t["currency"] == "USD"), Decimal(0))
else:
    rows = answer["page"]["rows"][:int(sys.argv[1])]
    total = sum(Decimal(r["amount"]) for r in rows)
# A check is positive: a selection netting to zero or less is paid by a
# nominal check, the difference booked to unapplied cash.
allow = total <= 0
check = Decimal("1.00") if allow else total
print(json.dumps({
    "snapshot_id": answer["snapshot_id"],
    "version_token": answer["version_token"],
    "selection": {"all": True, "except": []} if rows is None else {"ids": [r["id"] for r in rows]},
    "check": {"number": "DEMO-1", "amount": str(check), "currency": "USD", "received_on": "2024-04-15"},
    "allow_difference": allow,
    "overpayment_to_unapplied": allow,
}))
