"""Scratch PostgreSQL databases for a test run that do not outlive it.

Every database is named `pixal_test_<checkout>_<pid>_<random>`: `<checkout>` is a short hash
of this machine and this checkout's path (other worktrees and other machines sharing the server
have their own), `<pid>` is the pytest process that created it. So:

- at the end of a run, the drop reconnects and retries for a while: a PostgreSQL restart (or a
  dropped connection) at that moment does not leave the database behind;
- at the start of a run, databases of this checkout whose creating process is gone (a run that
  was killed, or whose drop failed for good) are dropped; those of a live run, of another
  checkout or with another name are never touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
import uuid
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

PREFIX = "pixal_test_"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# How long a create or drop keeps retrying while the server is unreachable or restarting.
PATIENCE_SECONDS = 60.0


def checkout_key(root: Path = PROJECT_ROOT) -> str:
    return hashlib.sha256(f"{socket.gethostname()}:{root}".encode()).hexdigest()[:8]


def scratch_name(pid: int | None = None, root: Path = PROJECT_ROOT) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{PREFIX}{checkout_key(root)}_{pid}_{uuid.uuid4().hex[:6]}"


def _admin_engine(server: URL) -> Engine:
    # NullPool: every attempt opens a new connection, so a retry after a restart reconnects.
    return create_engine(
        server.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )


def _execute_with_retry(server: URL, sql: str, patience: float, pause: float = 0.5) -> None:
    deadline = time.monotonic() + patience
    engine = _admin_engine(server)
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(text(sql))
                return
            except DBAPIError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
    finally:
        engine.dispose()


def create_database(server: URL, name: str, patience: float = PATIENCE_SECONDS) -> str:
    """Creates `name` on `server`; answers its URL."""
    _execute_with_retry(server, f'CREATE DATABASE "{name}"', patience)
    return server.set(database=name).render_as_string(hide_password=False)


def drop_database(server: URL, name: str, patience: float = PATIENCE_SECONDS) -> None:
    """Drops `name` (its sessions are ended), reconnecting until it is gone or `patience` ends."""
    _execute_with_retry(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', patience)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def drop_dead_leftovers(server: URL, root: Path = PROJECT_ROOT) -> list[str]:
    """Drops this checkout's scratch databases whose creating process is gone; answers them."""
    ours = re.compile(rf"^{PREFIX}{checkout_key(root)}_(?P<pid>\d+)_[0-9a-f]+$")
    engine = _admin_engine(server)
    try:
        with engine.connect() as conn:
            names = conn.execute(text("SELECT datname FROM pg_database")).scalars().all()
    finally:
        engine.dispose()
    dropped = []
    for name in names:
        match = ours.match(name)
        if match and not pid_alive(int(match["pid"])):
            drop_database(server, name, patience=10.0)
            dropped.append(name)
    return dropped
