"""The one scratch-database helper of the benchmarks: a PostgreSQL database created, then dropped.

Every benchmark that needs a database of its own takes it from here, so there is one place
that knows where the server is (BENCH_POSTGRES_URL, else TEST_POSTGRES_URL, else the local
server) and how a scratch database is named, migrated and dropped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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
