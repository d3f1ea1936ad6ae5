"""Engine and session factory. Nothing here runs at import time: the app's lifespan calls it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from database import unit_of_work
from database.deadlines import DatabaseDeadlines, install_deadlines
from database.models import SCHEMA as SCHEMA

# Execution option that marks a read-only engine (see create_read_session_factory).
READ_ONLY = "pixal_read_only"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_db_engine(url: str, deadlines: DatabaseDeadlines | None = None, **kwargs: Any) -> Engine:
    """An engine for `url`; on SQLite the `image_clustering` schema is mapped away.

    With `deadlines` (the server and its workers), no wait on PostgreSQL is unbounded
    (database/deadlines.py); migrations and benchmarks go without."""
    if not is_sqlite(url):
        if "+psycopg2" in url.split("://", 1)[0] or url.startswith("postgresql://"):
            # An UPDATE executed for many rows (an analysis writes one per image) goes in pages
            # of statements, not one round trip each: 50k labels in a fraction of the time.
            kwargs.setdefault("executemany_mode", "values_plus_batch")
            if deadlines is not None:
                kwargs.setdefault("connect_args", deadlines.connect_args())
                kwargs.setdefault("pool_timeout", deadlines.pool_timeout)
                engine = create_engine(url, pool_pre_ping=True, **kwargs)
                install_deadlines(deadlines, _connector(engine, kwargs["connect_args"]))
                return engine
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
        # A write transaction takes the write lock up front (IMMEDIATE): two deferred
        # transactions that both read and then write would deadlock, and SQLite would answer
        # "database is locked". A read transaction stays deferred: under WAL it reads a
        # snapshot and neither waits for the writer nor makes it wait.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine.execution_options(schema_translate_map={SCHEMA: None})


def _connector(engine: Engine, connect_args: dict[str, Any]) -> Callable[[], Any]:
    """A function that opens a new DBAPI connection as the engine's pool would, bypassing it."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    cparams = {**cparams, **connect_args}
    return lambda: engine.dialect.dbapi.connect(*cargs, **cparams)  # type: ignore[union-attr]


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for requests and jobs that write (on SQLite: BEGIN IMMEDIATE), with the unit
    of work (database.unit_of_work) installed."""
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    unit_of_work.install(factory)
    return factory


def create_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that only read: a deferred BEGIN on SQLite (under WAL, one snapshot), a READ
    ONLY transaction at REPEATABLE READ on PostgreSQL: every query of a request sees the same
    snapshot, so a page or an export read while a delete commits is the state before or after
    it, never half of each (a membership whose image is gone). A stray write fails loudly."""
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
        options["isolation_level"] = "REPEATABLE READ"
    return sessionmaker(bind=engine.execution_options(**options), expire_on_commit=False)
