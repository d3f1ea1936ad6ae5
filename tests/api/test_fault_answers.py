"""Faults are not bugs (issue 10, item 8): a database that is unreachable or out of
connections and a full disk answer a JSON 503 with Retry-After, never a plain-text 500.

The outages are real: a TCP proxy between the app and PostgreSQL that the test cuts, a
connection pool that the test holds empty, a small tmpfs that the test fills.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from api.main import create_app
from config import Settings
from database.database import create_db_engine, create_session_factory
from database.models import Image
from processing.feature_extraction import ManagedEmbedder
from tests.api.helpers import tmpfs_at, upload
from tests.factories import jpeg_bytes
from tests.system.db_proxy import DatabaseProxy


def assert_unavailable(response: httpx.Response, *, report: bool = False) -> None:
    """A JSON 503 with Retry-After: `{"detail"}`, or /health's report."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["retry-after"]) > 0
    if not report:
        assert isinstance(response.json()["detail"], str)


# --- The database: unreachable ------------------------------------------------------------------


@pytest.fixture
def proxied_client(
    database_url: str,
    on_sqlite: bool,
    settings: Settings,
    clean_database: Engine,
    tiny_embedder: ManagedEmbedder,
) -> Iterator[tuple[TestClient, DatabaseProxy]]:
    if on_sqlite:
        pytest.skip("SQLite is a file in the process: there is no server to lose")
    proxy = DatabaseProxy.for_url(database_url)
    app = create_app(
        settings.model_copy(update={"database_url": proxy.url_through(database_url)}),
        embedder=tiny_embedder,
        threaded_worker=False,
    )
    try:
        with TestClient(app) as client:
            yield client, proxy
    finally:
        proxy.close()


def test_an_unreachable_database_answers_503_and_health_says_so(
    proxied_client: tuple[TestClient, DatabaseProxy],
) -> None:
    client, proxy = proxied_client
    [image_id] = upload(client, [("a.jpg", jpeg_bytes(seed=1))])
    assert client.get("/health").status_code == 200

    proxy.cut()
    for method, path in (
        ("GET", "/images/"),
        ("GET", f"/images/metadata/{image_id}"),
        ("GET", "/batches/"),
        ("POST", "/batches/"),
    ):
        assert_unavailable(client.request(method, path, json={"name": "n", "image_ids": []}))
    assert_unavailable(
        client.post("/images/upload", files=[("files", ("b.jpg", jpeg_bytes(seed=2)))])
    )
    health = client.get("/health")
    assert_unavailable(health, report=True)
    assert health.json()["database"] == "unreachable"

    proxy.restore()
    assert client.get("/health").status_code == 200
    assert [i["id"] for i in client.get("/images/").json()] == [image_id]


# --- The database: no connection free -----------------------------------------------------------


def test_an_exhausted_connection_pool_answers_503(
    database_url: str, settings: Settings, clean_database: Engine, tiny_embedder: ManagedEmbedder
) -> None:
    engine = create_db_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.5)
    app = create_app(
        settings,
        session_factory=create_session_factory(engine),
        embedder=tiny_embedder,
        threaded_worker=False,
    )
    try:
        with TestClient(app) as client:
            assert client.get("/images/").status_code == 200
            with engine.connect():  # the only connection, held
                busy = client.get("/images/")
                assert_unavailable(busy)
                # Not an outage: the database answers, this process is out of connections.
                assert "busy" in busy.json()["detail"], busy.text
                assert_unavailable(client.get("/health"), report=True)
            assert client.get("/images/").status_code == 200
    finally:
        engine.dispose()


# --- The disk: full -----------------------------------------------------------------------------


def fill(directory: Path) -> Path:
    """Write into `directory` until the filesystem refuses with ENOSPC."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 4096, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


@pytest.fixture
def small_disk(storage_root: Path, settings: Settings) -> Iterator[Path]:
    """STORAGE_ROOT on its own 8 MB tmpfs (needs the right to mount; skipped otherwise), with
    no free-space floor: the disk itself says when it is full."""
    settings.storage_min_free_mb = 0  # before the test's client is made from these settings
    with tmpfs_at(storage_root, 8) as disk:
        yield disk


def test_a_full_disk_answers_503_and_a_thumbnail_is_not_called_undecodable(
    small_disk: Path, client: TestClient, db: Session
) -> None:
    [image_id] = upload(client, [("a.jpg", jpeg_bytes((800, 600), seed=3))])
    # The thumbnail has not been made yet (as when the worker is behind).
    for thumbnail in (small_disk / "thumbnails").iterdir():
        thumbnail.unlink()
    db.execute(update(Image).where(Image.id == image_id).values(has_thumbnail=False))
    db.flush()

    filler = fill(small_disk)
    assert client.get("/health").json()["storage"] == "full"
    assert_unavailable(
        client.post("/images/upload", files=[("files", ("b.jpg", jpeg_bytes(seed=4)))])
    )
    assert_unavailable(client.get(f"/images/thumbnail/{image_id}"))
    assert list((small_disk / "incoming").iterdir()) == []

    filler.unlink()
    response = client.get(f"/images/thumbnail/{image_id}")
    assert response.status_code == 200
    assert response.content.startswith(b"\xff\xd8")
    assert len(upload(client, [("b.jpg", jpeg_bytes(seed=4))])) == 1
