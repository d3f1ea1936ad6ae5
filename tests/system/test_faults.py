"""Faults that are not crashes, against the real server process: a database outage, storage
that cannot be written, a second server on the same storage, a graceful shutdown.

The outage goes through a TCP proxy (tests/system/db_proxy.py); the shared PostgreSQL is
never stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from database.database import is_sqlite
from database.models import Image
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess
from tests.system.db_proxy import DatabaseProxy
from utils.file_handling import thumbnail_relative_path

pytestmark = pytest.mark.slow


def server_env(database_url: str, storage_root: Path, tiny_dinov3_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "STORAGE_ROOT": str(storage_root),
        "EMBEDDING_MODEL": str(tiny_dinov3_dir),
        "EMBEDDING_DEVICE": "cpu",
        "TORCH_THREADS": "1",
        "API_KEY": "",
        "PYTHONUNBUFFERED": "1",
    }


def upload(url: str, prefix: str, images: list[bytes], per_request: int = 10) -> list[int]:
    ids: list[int] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for start in range(0, len(images), per_request):
            files = [
                ("files", (f"{prefix}{start + n}.jpg", data, "image/jpeg"))
                for n, data in enumerate(images[start : start + per_request])
            ]
            response = client.post("/images/upload", files=files)
            assert response.status_code == 200, response.text
            ids += [item["id"] for item in response.json()]
    return ids


def done_count(engine: Engine) -> int:
    with Session(engine) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(Image)
                .where(Image.has_thumbnail.is_(True), Image.embedding_model.is_not(None))
            )
            or 0
        )


def check_all_done(engine: Engine, storage_root: Path, ids: list[int]) -> None:
    with Session(engine) as session:
        rows = list(session.scalars(select(Image).where(Image.id.in_(ids))))
    assert sorted(row.id for row in rows) == sorted(ids), "rows lost"
    for row in rows:
        assert row.processing_error is None, f"image {row.id} marked failed: {row.processing_error}"
        assert row.has_thumbnail, f"image {row.id} has no thumbnail"
        assert (storage_root / thumbnail_relative_path(row.filename)).is_file()
        assert row.quality_score is not None
        assert row.embedding_model is not None, f"image {row.id} has no embedding"
        original = Path(row.source_path) if row.source_path else storage_root / row.file_path
        assert original.is_file(), f"image {row.id} lost its file"


def wait_for(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def proxy(database_url: str) -> Iterator[DatabaseProxy]:
    if is_sqlite(database_url):
        pytest.skip("a database outage is simulated with a TCP proxy to PostgreSQL")
    proxy = DatabaseProxy.for_url(database_url)
    try:
        yield proxy
    finally:
        proxy.close()


def test_database_outage_mid_processing_loses_nothing(
    proxy: DatabaseProxy,
    database_url: str,
    clean_database: Engine,
    tmp_path: Path,
    tiny_dinov3_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 10, item 1: the queue used to drain in a second, every batch dropped."""
    storage_root = tmp_path / "assets"
    env = server_env(proxy.url_through(database_url), storage_root, tiny_dinov3_dir)
    server = ServerProcess(env=env, log_path=tmp_path / "server.log")
    server.start()
    try:
        images = [jpeg_bytes((1600, 1200), seed=7000 + n) for n in range(60)]
        ids = upload(server.url, "outage", images)
        wait_for(lambda: done_count(clean_database) >= 4, "processing to start")
        proxy.cut()
        done_at_cut = done_count(clean_database)
        assert done_at_cut < len(ids), "the outage did not land mid-processing"
        # The worker's next batch fails; it stays queued, tried again with backoff.
        wait_for(lambda: "kept queued" in server.log_path.read_text(), "a failed batch", 120)
        time.sleep(4)  # a few more failed tries
        done_in_outage = done_count(clean_database)
        proxy.restore()
        health = server.wait_until_processed(timeout=180)
        check_all_done(clean_database, storage_root, ids)
        assert health["failed_images"] == 0
    finally:
        server.stop()
    with capsys.disabled():
        print(  # noqa: T201 - the figures of the run
            f"\n[outage test] {len(ids)} images; {done_at_cut} done at the cut, "
            f"{done_in_outage} at the end of the outage; all done after the database returned"
        )


def test_thumbnail_storage_fault_is_retried_not_dropped(
    server: ServerProcess, clean_database: Engine, tmp_path: Path
) -> None:
    """Issue 10, item 1 (storage): a failing thumbnail write used to drop its whole batch.

    The thumbnails folder is replaced by a plain file, so every thumbnail write fails with an
    OSError, as on a full or vanished disk. Uploads refuse such storage now (503), so the photos
    come in through an import in place, which writes nothing into the storage itself."""
    card = tmp_path / "roots" / "card"
    card.mkdir(parents=True)
    for n in range(12):
        (card / f"IMG_{n:04d}.JPG").write_bytes(jpeg_bytes((800, 600), seed=7100 + n))
    server.stop()
    server.env["IMPORT_ROOTS"] = str(tmp_path / "roots")
    server.start()
    storage_root = Path(server.env["STORAGE_ROOT"])
    thumbnails = storage_root / "thumbnails"
    shutil.rmtree(thumbnails)
    thumbnails.write_bytes(b"not a folder")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        started = client.post("/imports", json={"path": "card", "batch_name": "full"})
        assert started.status_code == 202, started.text
        import_id = started.json()["id"]
        wait_for(
            lambda: client.get(f"/imports/{import_id}").json()["status"] == "complete", "the import"
        )
        batch_id = client.get(f"/imports/{import_id}").json()["batch_id"]
        batch = client.get(f"/batches/{batch_id}").json()
    ids = [a["image"]["id"] for a in batch["image_associations"]]
    assert len(ids) == 12
    wait_for(lambda: "kept queued" in server.log_path.read_text(), "a failed write", 60)
    time.sleep(2)  # more failed tries
    health = server.health()
    assert health["failed_images"] == 0, "a storage fault is not the image's fault"
    assert health["pending_thumbnails"] == len(ids)
    assert health["queued"] > 0, "the work left the queue"

    thumbnails.unlink()
    thumbnails.mkdir()
    server.wait_until_processed(timeout=120)
    check_all_done(clean_database, storage_root, ids)


def test_a_second_server_on_the_same_storage_deletes_no_upload_in_flight(
    server: ServerProcess, clean_database: Engine, database_url: str, tmp_path: Path
) -> None:
    """Issue 10, item 3: a second server's start-up used to delete `incoming/` files whose rows
    were not committed yet; the first server then answered 200 for rows without files."""
    if is_sqlite(database_url):
        pytest.skip("the upload is held mid-transaction with a PostgreSQL table lock")
    storage_root = Path(server.env["STORAGE_ROOT"])
    incoming = storage_root / "incoming"
    images = [jpeg_bytes((640, 480), seed=7200 + n) for n in range(20)]
    answers: list[httpx.Response] = []

    with clean_database.connect() as conn:
        trans = conn.begin()
        # Inserts into images wait; reads (the second server's start-up) do not.
        conn.execute(text("LOCK TABLE image_clustering.images IN EXCLUSIVE MODE"))
        files = [("files", (f"f{n}.jpg", data, "image/jpeg")) for n, data in enumerate(images)]
        sender = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{server.url}/images/upload", files=files, timeout=120)
            )
        )
        sender.start()
        # Every file is in incoming/ and the first row waits for the lock: in flight.
        wait_for(lambda: len(list(incoming.iterdir())) == len(images), "the upload to spool")
        second = ServerProcess(env=server.env, log_path=tmp_path / "second.log")
        second.start()  # its start-up repair has run once it answers /health
        try:
            assert len(list(incoming.iterdir())) == len(images), "the second server deleted"
            trans.rollback()  # releases the lock
            sender.join(timeout=120)
        finally:
            second.stop()

    [answer] = answers
    assert answer.status_code == 200, answer.text
    ids = [item["id"] for item in answer.json()]
    assert len(ids) == len(images)
    server.wait_until_processed(timeout=120)
    check_all_done(clean_database, storage_root, ids)
    assert list(incoming.iterdir()) == []


def test_graceful_shutdown_leaves_queued_work_for_the_next_start(
    server: ServerProcess, clean_database: Engine
) -> None:
    """Issue 14: SIGTERM used to wait for the whole queue (up to 30 s). Now the batch in hand
    is finished, the rest stays unfinished in the database and the next start does it."""
    storage_root = Path(server.env["STORAGE_ROOT"])
    ids = upload(
        server.url, "term", [jpeg_bytes((1600, 1200), seed=7300 + n) for n in range(60)], 30
    )
    wait_for(lambda: done_count(clean_database) >= 1, "processing to start")
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        raise
    # uvicorn re-raises the signal once its shutdown is complete.
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log_path.read_text()
    left = len(ids) - done_count(clean_database)
    assert left > 0, "the shutdown drained the whole queue first"

    server.start()
    server.wait_until_processed(timeout=180)
    check_all_done(clean_database, storage_root, ids)
