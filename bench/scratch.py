"""The scratch helpers of the benchmarks: a PostgreSQL database made and dropped, a server run.

Every benchmark that needs a database of its own takes it from here, so there is one place
that knows where the server is (BENCH_POSTGRES_URL, else TEST_POSTGRES_URL, else the local
server) and how a scratch database is named, migrated and dropped. `running_server` starts a
real `uvicorn api.main:app` from a code tree (two trees compare two versions of the server in
one run) and stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from database.migrations import upgrade_to_head

DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def default_admin_url() -> str:
    """The server scratch databases are made on, from the environment or the local default."""
    return (
        os.environ.get("BENCH_POSTGRES_URL")
        or os.environ.get("TEST_POSTGRES_URL")
        or DEFAULT_ADMIN_URL
    )


@contextmanager
def scratch_postgres(
    admin_url: str | None = None, prefix: str = "pixal_bench", *, migrate: bool = False
) -> Iterator[str]:
    """The URL of a new database on the server of `admin_url` (default: `default_admin_url()`),
    empty or, with `migrate`, at the head migration; dropped when the block ends."""
    server = make_url(admin_url or default_admin_url())
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        if migrate:
            upgrade_to_head(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def model_ready(url: str) -> bool:
    """Whether the server at `url` answers /health with an active model."""
    try:
        answer = httpx.get(f"{url}/health", timeout=5)
        model = answer.json().get("model") or {}
    except (httpx.HTTPError, ValueError):
        return False
    return answer.status_code == 200 and bool(model.get("active_model"))


@contextmanager
def running_server(
    code: Path,
    env: Mapping[str, str],
    log: Path,
    ready: Callable[[str], bool] = model_ready,
    start_seconds: float = 600,
) -> Iterator[str]:
    """The base URL of `uvicorn api.main:app` run from the tree `code` with environment `env`
    (its output appended to `log`), once `ready(url)`; terminated when the block ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)],
            cwd=code,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_seconds
        while not ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
