#!/usr/bin/env bash
# `make fuzz SECS=60`: every target of crates/clearance-fuzz (listed in
# fuzz/Cargo.toml) under libFuzzer with AddressSanitizer for SECS seconds
# each, starting from fuzz/seeds/<target> and the corpus earlier runs grew
# (fuzz/corpus, not committed). Prints a line per target and fails when any
# target crashed; a crash input lands in fuzz/artifacts/<target>/ and is
# copied to fuzz/regressions/<target>/ so `make test` replays it from then on
# (tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECS:-60}"
case "$secs" in ''|*[!0-9]*) echo "fuzz: SECS must be a number of seconds" >&2; exit 2 ;; esac

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: cargo-fuzz needs the nightly toolchain (sanitizers); rustup toolchain install nightly" >&2
  exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

cd fuzz
echo "fuzz: building the targets (nightly, AddressSanitizer; the first build takes minutes)"
cargo +nightly fuzz build -O
mkdir -p logs
crashed=0
printf '%-18s %12s %10s %8s\n' target executions corpus crashes
for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target" "artifacts/$target"
  seen="logs/$target.artifacts"
  find "artifacts/$target" -type f | sort >"$seen"
  status=0
  cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
    >"logs/$target.log" 2>&1 || status=$?
  new=$(find "artifacts/$target" -type f | sort | comm -13 "$seen" -)
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$target.log" | grep -o '[0-9]*$' | tail -1)
  printf '%-18s %12s %10s %8s\n' "$target" "${runs:-?}" "$(find "corpus/$target" -type f | wc -l)" "$(printf '%s' "$new" | grep -c . || true)"
  if [ "$status" -ne 0 ] || [ -n "$new" ]; then
    crashed=1
    mkdir -p "regressions/$target"
    for input in $new; do cp "$input" "regressions/$target/"; done
    echo "fuzz: $target failed (exit $status); see fuzz/logs/$target.log, input copied to fuzz/regressions/$target/" >&2
  fi
done
exit "$crashed"
