#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432, starting the local cluster if it is down.
set -euo pipefail
HOST=${PGHOST_CHECK:-127.0.0.1}
PORT=${PGPORT_CHECK:-5432}

ready() { pg_isready -h "$HOST" -p "$PORT" -q 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "PostgreSQL client tools are not installed; install PostgreSQL or run DATABASE_URL=sqlite make test" >&2
  exit 1
fi
ready && exit 0

if command -v pg_lsclusters >/dev/null 2>&1; then
  echo "PostgreSQL is down; starting the local cluster(s)"
  pg_lsclusters --no-header | while read -r version cluster _rest; do
    pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
  done
fi
for _ in $(seq 1 30); do
  ready && exit 0
  sleep 1
done
echo "PostgreSQL does not answer on $HOST:$PORT; start it, or run DATABASE_URL=sqlite make test" >&2
exit 1
