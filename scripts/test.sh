#!/usr/bin/env bash
# `make test`: formatting, lints and every test, with the stack they need.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

rustup component add rustfmt clippy >/dev/null 2>&1 || true
bash scripts/up.sh
load_env

# Test databases of earlier runs (a failed test keeps its own for
# inspection) and templates of older migrations.
drop_test_databases

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cfn-lint"
.dev/venv/bin/cfn-lint template.yaml
echo "== tests"
# The Lambda binaries themselves: tests/production_edges starts them as
# processes (cargo test builds bin targets only as test harnesses).
cargo build --workspace --bins --quiet
log=.dev/test.log
status=0
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=$?
# The OpenAPI document against the server, both directions (schemathesis).
contract=0
bash scripts/api_contract.sh 2>&1 | tee .dev/api-contract.log || contract=$?
if [ "$contract" -ne 0 ]; then status=$contract; fi
# The reference grid in Chromium (Debian's, installed by the script).
web=0
bash scripts/web_e2e.sh 2>&1 | tee .dev/web-e2e.log || web=$?
if [ "$web" -ne 0 ]; then status=$web; fi
# One closing line for the whole run, summed over every test binary, the
# API contract run and the browser run counted as one test each.
awk -v contract="$contract" -v web="$web" '/^test result:/ { p += $4; f += $6 }
  END { if (contract == 0) p += 1; else f += 1; if (web == 0) p += 1; else f += 1;
        printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
