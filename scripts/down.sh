#!/usr/bin/env bash
# Stops what scripts/up.sh started, by its recorded id only: the moto server,
# and PostgreSQL if (and only if) up.sh had to start it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .dev/moto.pid ]; then
  pid=$(cat .dev/moto.pid)
  if kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
  rm -f .dev/moto.pid
  echo "down: moto stopped"
fi
if [ -f .dev/pg.started-by-us ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main stop || true
  rm -f .dev/pg.started-by-us
  echo "down: PostgreSQL stopped"
fi
