"""Test fixtures: a real database built by Alembic, the real app, real files.

PostgreSQL by default: a fresh database is created for the run (from TEST_POSTGRES_URL, default
postgres@127.0.0.1:5432) and dropped at the end, even across a server restart; one left by a
killed run of this checkout is dropped by the next run (tests/scratch_db.py). Set
DATABASE_URL=sqlite:///... (or just `sqlite`) to run the same suite on SQLite.

Which tests run on both databases: every test that uses the run's database, that is, whose
fixtures include `database_url` directly or through another fixture (`db`, `client`, `engine`,
`server`, ...). A test without it (image processing, models, the bench tool, layering, the
migration tests that open both databases themselves) cannot see which database the run uses,
so the SQLite pass leaves it out (deselected, counted in the header); the PostgreSQL pass runs
it. So does a test marked `one_database`: it starts a server, but what it tests (a browser on
the docs, the model's process, slow sockets, the README's commands) is the same on either
database. `ALL_TESTS_ON_SQLITE=1` runs everything on SQLite too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from config import Settings
from database.database import SCHEMA, create_db_engine, is_sqlite
from database.migrations import upgrade_to_head
from processing.embedding_spec import OFFLINE_MODEL_ID, EmbedderSpec
from processing.feature_extraction import ManagedEmbedder
from tests import scratch_db
from tests.tiny_models import build_tiny_dinov3

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
TABLES = (
    "imports",
    "image_batch_association",
    "image_batches",
    "images",
    "active_model",
    "judge_profile",
)


def _requested_url(tmp_dir: Path) -> str | None:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url == "sqlite":
        return f"sqlite:///{tmp_dir / 'test.db'}"
    return url or None


def _sqlite_pass() -> bool:
    url = os.environ.get("DATABASE_URL", "").strip()
    return url == "sqlite" or (bool(url) and is_sqlite(url))


def _dialect_free_left_out() -> bool:
    return _sqlite_pass() and os.environ.get("ALL_TESTS_ON_SQLITE", "") != "1"


def pytest_report_header(config: pytest.Config) -> str | None:
    if _dialect_free_left_out():
        return "SQLite pass: tests that do not use the database are left out (PostgreSQL ran them)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the SQLite pass, leave out the tests that do not use the run's database."""
    if not _dialect_free_left_out():
        return
    uses_database: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        uses = "database_url" in getattr(item, "fixturenames", ()) and (
            item.get_closest_marker("one_database") is None
        )
        (uses_database if uses else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = uses_database


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for this test run."""
    requested = _requested_url(tmp_path_factory.mktemp("db"))
    if requested and is_sqlite(requested):
        upgrade_to_head(requested)
        yield requested
        return
    server = make_url(requested or os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    scratch_db.drop_dead_leftovers(server)
    name = scratch_db.scratch_name()
    url = scratch_db.create_database(server, name)
    try:
        upgrade_to_head(url)
        yield url
    finally:
        # Reconnects and retries: a PostgreSQL restart now does not leave the database behind.
        scratch_db.drop_database(server, name)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def on_sqlite(database_url: str) -> bool:
    return is_sqlite(database_url)


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """An outer transaction that is rolled back after the test."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    # SQLAlchemy's "join a Session into an external transaction" recipe: the app's commits
    # become SAVEPOINT releases inside the test's transaction.
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture(scope="session")
def tiny_dinov3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory `AutoModel.from_pretrained` loads as a tiny DINOv3 (hidden size 64)."""
    return build_tiny_dinov3(tmp_path_factory.mktemp("tiny-dinov3"))


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    return tmp_path / "assets"


@pytest.fixture
def settings(database_url: str, storage_root: Path, tiny_dinov3_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        storage_root=storage_root,
        embedding_model=str(tiny_dinov3_dir),
        embedding_device="cpu",
        torch_threads=1,
        max_upload_bytes=5 * 1024 * 1024,
        # A worker process per test app would cost seconds each; the process pool has tests
        # of its own (tests/services/test_clustering_pool.py, tests/system/).
        analysis_isolation="thread",
        # Likewise the model: tests that build their app without an embedder run it here; the
        # model's own process is tested in tests/processing/test_model_process.py and
        # tests/system/.
        embedding_isolation="thread",
    )


@pytest.fixture(scope="session")
def tiny_embedder(tiny_dinov3_dir: Path) -> ManagedEmbedder:
    """The tiny DINOv3 model, loaded once for the whole run through the real code path."""
    embedder = ManagedEmbedder(EmbedderSpec(str(tiny_dinov3_dir), device="cpu"))
    embedder.load()
    return embedder


@pytest.fixture
def client(
    settings: Settings, session_factory: sessionmaker[Session], tiny_embedder: ManagedEmbedder
) -> Iterator[TestClient]:
    """The real app in a rolled-back transaction; background work runs inline, in order."""
    app = create_app(
        settings, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def offline_embedder() -> ManagedEmbedder:
    embedder = ManagedEmbedder(EmbedderSpec(OFFLINE_MODEL_ID, device="cpu"))
    embedder.load()
    return embedder


@pytest.fixture
def offline_client(
    settings: Settings, session_factory: sessionmaker[Session], offline_embedder: ManagedEmbedder
) -> Iterator[TestClient]:
    offline = settings.model_copy(update={"embedding_model": "efficientnet-lite0"})
    app = create_app(
        offline, session_factory=session_factory, embedder=offline_embedder, threaded_worker=False
    )
    with TestClient(app) as client:
        yield client


def truncate_all(engine: Engine) -> None:
    with engine.begin() as conn:
        if is_sqlite(str(engine.url)):
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
        else:
            names = ", ".join(f"{SCHEMA}.{table}" for table in TABLES)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def clean_database(engine: Engine) -> Iterator[Engine]:
    """For tests whose app commits for real: empty tables before and after."""
    truncate_all(engine)
    yield engine
    truncate_all(engine)


@pytest.fixture
def live_client(
    settings: Settings, clean_database: Engine, tiny_embedder: ManagedEmbedder
) -> Iterator[TestClient]:
    """The real app committing to the test database, with its real background thread."""
    with TestClient(create_app(settings, embedder=tiny_embedder)) as test_client:
        yield test_client
