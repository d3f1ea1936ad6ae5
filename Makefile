# Two commands for a new user: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test test-quick test-postgres test-sqlite lint format migrate clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## Install, migrate (SQLite under ./assets unless DATABASE_URL says otherwise), serve on :8000.
run: $(VENV)/.runtime
	$(PY) run_server.py

## The whole suite on a fresh PostgreSQL database and on SQLite, both passes at once.
test: $(VENV)/.dev
	./scripts/ensure_postgres.sh
	PY=$(PY) PYTEST_ARGS="$(PYTEST_ARGS)" ./scripts/test_both.sh

test-postgres: $(VENV)/.dev
	./scripts/ensure_postgres.sh
	env -u DATABASE_URL $(PY) -m pytest $(PYTEST_ARGS)

## A few minutes: the tests not marked slow, on PostgreSQL only (see README).
test-quick: $(VENV)/.dev
	./scripts/ensure_postgres.sh
	env -u DATABASE_URL $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-sqlite: $(VENV)/.dev
	DATABASE_URL=sqlite $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(VENV)/.dev
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

migrate: $(VENV)/.runtime
	$(PY) -c "from config import get_settings; from database.migrations import upgrade_to_head; upgrade_to_head(get_settings().resolved_database_url)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
