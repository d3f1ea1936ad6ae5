"""A scratch PostgreSQL database for a benchmark: created empty, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_postgres(admin_url: str | None = None, prefix: str = "pixal_bench") -> Iterator[str]:
    """The URL of a new, empty database on the server of `admin_url` (default: TEST_POSTGRES_URL
    or the local server), dropped when the block ends."""
    admin_url = admin_url or os.environ.get("TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    server = make_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
