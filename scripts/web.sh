#!/usr/bin/env bash
# The reference grid (web/): its packages from the lockfile (`npm ci`, no
# browser download: playwright-core ships none), its unit tests (Vitest) and
# its build into web/dist, which the local server serves at /app/. With
# `--browser`, also Debian's Chromium for the end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "web: Debian's chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
  echo "web: installing Debian's chromium"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
command -v npm >/dev/null || { echo "web: Node.js and npm are needed (Node 20.19+)" >&2; exit 1; }
# Vite 8 needs Node 20.19 or later (Debian's own nodejs package is older).
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
  || { echo "web: Node.js $(node --version) is too old: Vite 8 needs 20.19 or later" >&2; exit 1; }

cd web
# Reinstall only when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json .dev-installed-lock 2>/dev/null; then
  npm ci --include=dev --no-audit --no-fund --loglevel=error
  cp package-lock.json .dev-installed-lock
fi
./node_modules/.bin/vitest run --reporter=dot
npm run --silent build
