#!/usr/bin/env bash
# `make package`: the deployable zips of every function (arm64,
# provided.al2023) with cargo-lambda, cross-compiled with zig; prints their
# sizes. Installs what it needs: the aarch64 Rust target (rustup),
# cargo-lambda (crates.io, pinned) and zig (PyPI's ziglang, pinned, in the
# project venv).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

CARGO_LAMBDA_VERSION="1.9.2"
ZIGLANG_VERSION="0.13.0"

rustup target add aarch64-unknown-linux-gnu >/dev/null
if ! cargo lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION"; then
  echo "package: installing cargo-lambda $CARGO_LAMBDA_VERSION (crates.io; a few minutes once)"
  cargo install cargo-lambda --locked --version "$CARGO_LAMBDA_VERSION"
fi
[ -x .dev/venv/bin/python ] || python3 -m venv .dev/venv
if ! .dev/venv/bin/python -c "import ziglang" 2>/dev/null; then
  .dev/venv/bin/pip install -q --disable-pip-version-check "ziglang==$ZIGLANG_VERSION"
fi
# cargo-lambda finds zig through `python3 -m ziglang` on the PATH.
export PATH="$PWD/.dev/venv/bin:$PATH"

out=target/lambda
for dir in functions/*/; do
  bin=$(basename "$dir")
  cargo lambda build --release --arm64 --bin "$bin" --output-format zip --lambda-dir "$out"
done
echo "| function | zip (bootstrap inside) |"
echo "|---|---|"
for dir in functions/*/; do
  bin=$(basename "$dir")
  zip="$out/$bin/bootstrap.zip"
  printf "| %s | %s (%s unzipped) |\n" "$bin" "$(du -h "$zip" | cut -f1)" \
    "$(unzip -l "$zip" | awk '/bootstrap$/ { printf "%.1fM", $1 / 1048576 }')"
done
