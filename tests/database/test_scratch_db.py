"""The run's scratch PostgreSQL database does not outlive the run (tests/scratch_db.py).

A restart of the shared server cannot be done here, so the outage is the TCP proxy of
tests/system/db_proxy.py: it refuses and closes connections like a server that is down, and
forwards again when "restarted"."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from tests import scratch_db
from tests.conftest import DEFAULT_POSTGRES_URL
from tests.system.db_proxy import DatabaseProxy


@pytest.fixture
def server() -> URL:
    url = make_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    engine = create_engine(url.set(database="postgres"))
    try:
        with engine.connect():
            pass
    except OperationalError as error:
        pytest.skip(f"no PostgreSQL server: {error}")
    finally:
        engine.dispose()
    return url


def _databases(server: URL) -> set[str]:
    engine = create_engine(server.set(database="postgres"))
    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()


@pytest.fixture
def made(server: URL) -> Iterator[list[str]]:
    """Names this test creates; dropped afterwards whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        scratch_db.drop_database(server, name, patience=10)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not scratch_db.pid_alive(child.pid)
    return child.pid


def test_the_drop_waits_out_a_server_that_is_down(server: URL, made: list[str]) -> None:
    name = scratch_db.scratch_name()
    made.append(name)
    scratch_db.create_database(server, name)
    # A session in the database, as the run's engine holds at the end.
    session = create_engine(server.set(database=name))
    with session.connect() as conn:
        conn.execute(text("SELECT 1"))
    proxy = DatabaseProxy(server.host or "127.0.0.1", server.port or 5432)
    through = make_url(proxy.url_through(server.render_as_string(hide_password=False)))
    try:
        proxy.cut()
        # One attempt, as the drop used to make, fails while the server is down ...
        with pytest.raises(DBAPIError):
            scratch_db.drop_database(through, name, patience=0)
        assert name in _databases(server)
        # ... the drop reconnects until it is back.
        restart = threading.Timer(3.0, proxy.restore)
        restart.start()
        scratch_db.drop_database(through, name, patience=30)
        restart.join()
    finally:
        proxy.close()
        session.dispose()
    assert name not in _databases(server)


def test_a_run_drops_only_the_leftovers_of_dead_runs_of_its_checkout(
    server: URL, made: list[str]
) -> None:
    dead = _dead_pid()
    ours_dead = scratch_db.scratch_name(pid=dead)
    ours_live = scratch_db.scratch_name()  # this process: a run in progress
    elsewhere_dead = scratch_db.scratch_name(pid=dead, root=Path("/another/checkout"))
    foreign = f"pixal_other_{dead}"
    for name in (ours_dead, ours_live, elsewhere_dead, foreign):
        made.append(name)
        scratch_db.create_database(server, name)

    dropped = scratch_db.drop_dead_leftovers(server)

    assert ours_dead in dropped
    present = _databases(server)
    assert ours_dead not in present
    assert {ours_live, elsewhere_dead, foreign} <= present
