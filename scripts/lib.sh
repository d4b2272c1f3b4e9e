# Shared by the scripts: bounded waits, PostgreSQL and moto management.
# Sourced, not run.

MOTO_VERSION="5.2.5"
CFN_LINT_VERSION="1.58.0"
SCHEMATHESIS_VERSION="4.32.5"
# Pinned with schemathesis, so that a run is the same run on every machine
# (scripts/api_contract/hooks.py works around a CPython 3.11 parser error in it).
HYPOTHESIS_VERSION="6.140.3"

# Waits until "$@" succeeds, at most $1 seconds.
wait_for() {
  local secs=$1; shift
  local i
  for ((i = 0; i < secs * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }

ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    return 0
  fi
  if command -v pg_isready >/dev/null && pg_up; then
    return 0
  fi
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "up: PostgreSQL is not installed; installing it from Debian's packages" >&2
    if [ "$(id -u)" != 0 ]; then
      echo "up: need root to install PostgreSQL (or set DATABASE_URL)" >&2
      return 1
    fi
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    echo "up: no PostgreSQL cluster under /etc/postgresql" >&2
    return 1
  fi
  # Local development trusts loopback connections (the machine's own setup).
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  echo "up: starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  touch .dev/pg.started-by-us
  wait_for 30 pg_up || { echo "up: PostgreSQL did not come up on 127.0.0.1:5432" >&2; return 1; }
}

ensure_venv() {
  if [ ! -x .dev/venv/bin/moto_server ] || [ ! -x .dev/venv/bin/cfn-lint ] || [ ! -x .dev/venv/bin/schemathesis ]; then
    python3 -m venv .dev/venv
    .dev/venv/bin/pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
      "cfn-lint==$CFN_LINT_VERSION" "schemathesis==$SCHEMATHESIS_VERSION" \
      "hypothesis==$HYPOTHESIS_VERSION"
  fi
}

moto_up() { curl -s -o /dev/null "http://127.0.0.1:$(cat .dev/moto.port)/moto-api/"; }

ensure_moto() {
  ensure_venv
  if [ -f .dev/moto.pid ] && kill -0 "$(cat .dev/moto.pid)" 2>/dev/null && moto_up; then
    return 0
  fi
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$port" > .dev/moto.port
  nohup .dev/venv/bin/moto_server -H 127.0.0.1 -p "$port" > .dev/moto.log 2>&1 &
  echo $! > .dev/moto.pid
  wait_for 30 moto_up || { echo "up: moto did not answer on 127.0.0.1:$port (see .dev/moto.log)" >&2; return 1; }
}

build_release() {
  local args=()
  for p in "$@"; do args+=(-p "$p"); done
  cargo build --release --quiet "${args[@]}"
}

load_env() {
  set -a
  # shellcheck disable=SC1091
  . .dev/env
  set +a
}

# The maintenance database URL of the server in DATABASE_URL.
# DATABASE_URL with database $1 instead (a scratch ledger of a script's own).
database_url() {
  python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit((p.scheme, p.netloc, "/" + sys.argv[2], p.query, "")))' "$DATABASE_URL" "$1"
}

# URL $2 connecting as role $1 (trust authentication, the local stack's).
as_role() {
  python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[2]); host = p.hostname + (f":{p.port}" if p.port else "")
print(u.urlunsplit((p.scheme, sys.argv[1] + "@" + host, p.path, p.query, "")))' "$1" "$2"
}

maintenance_url() {
  python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit((p.scheme, p.netloc, "/postgres", p.query, "")))' "$DATABASE_URL"
}

drop_test_databases() {
  local url db
  url=$(maintenance_url)
  for db in $(psql "$url" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'clearance\_test\_%' OR datname LIKE 'clearance\_tpl\_%'"); do
    psql "$url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
  done
}
