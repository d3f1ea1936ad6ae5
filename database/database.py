"""Engine and session factory. Nothing here runs at import time: the app's lifespan calls it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

SCHEMA = "image_clustering"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; on SQLite the `image_clustering` schema is mapped away."""
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, **kwargs)

    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN, so SAVEPOINTs work (SQLAlchemy's
        # pysqlite recipe). Foreign keys are off by default on SQLite; WAL lets readers
        # run beside the writer.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: two deferred transactions that both read
        # and then write would deadlock, and SQLite would answer "database is locked".
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine.execution_options(schema_translate_map={SCHEMA: None})


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Imported here: database.vector_version imports the models, which import this module.
    from database.vector_version import track_vector_changes

    track_vector_changes()
    return sessionmaker(bind=engine, expire_on_commit=False)
