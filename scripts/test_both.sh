#!/usr/bin/env bash
# `make test`: the PostgreSQL pass and the SQLite pass at the same time, as two processes.
# Most of the suite's wall time is waiting (servers starting, workers draining, faults timing
# out), so two passes side by side take far less than one after the other. The PostgreSQL
# pass prints as it goes; the SQLite pass's output follows it. Fails if either pass fails.
set -uo pipefail
PY=${PY:-.venv/bin/python}
read -r -a args <<<"${PYTEST_ARGS:-}"
sqlite_log=$(mktemp)
trap 'rm -f "$sqlite_log"' EXIT

# Each pass gets its own Redis database for the Celery tests: they empty it before and after.
DATABASE_URL=sqlite TEST_CELERY_BROKER_URL=redis://127.0.0.1:6379/14 "$PY" -m pytest -p no:cacheprovider "${args[@]}" >"$sqlite_log" 2>&1 &
sqlite_pid=$!
echo "== PostgreSQL pass (the SQLite pass runs alongside; its output follows) =="
env -u DATABASE_URL TEST_CELERY_BROKER_URL=redis://127.0.0.1:6379/15 "$PY" -m pytest "${args[@]}"
postgres_status=$?
wait "$sqlite_pid"
sqlite_status=$?
echo "== SQLite pass =="
cat "$sqlite_log"
echo "== PostgreSQL pass: exit $postgres_status; SQLite pass: exit $sqlite_status =="
((postgres_status == 0 && sqlite_status == 0))
