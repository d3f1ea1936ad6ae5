"""The real background thread, committed data, concurrent clients, and restarts."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import Engine, event, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from config import Settings
from database.database import create_db_engine
from database.models import Image
from processing.feature_extraction import Embedder, ManagedEmbedder
from services.background.handoff import decode_shelf
from services.background.inline import ProcessingWorker
from services.background.pipeline import finish_images, prepare_images, process_images
from services.background.retry import Backoff
from services.background.startup import STALE_SECONDS, StorageLease, reconcile_storage
from tests.factories import jpeg_bytes, png_bytes
from utils.file_handling import ensure_storage_dirs


def post_files(client: TestClient, *files: tuple[str, bytes]) -> list[dict]:
    response = client.post(
        "/images/upload", files=[("files", (n, d, "image/jpeg")) for n, d in files]
    )
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_worker(client: TestClient) -> None:
    assert client.app.state.worker.wait_idle(timeout=60)  # type: ignore[attr-defined]


def rows(engine: Engine) -> list[Image]:
    with Session(engine) as session:
        return list(session.scalars(select(Image).order_by(Image.id)))


def test_uploads_are_processed_by_the_background_thread(
    live_client: TestClient, engine: Engine
) -> None:
    items = post_files(
        live_client, *[(f"{i}.jpg", jpeg_bytes((200, 150), seed=i)) for i in range(5)]
    )
    wait_for_worker(live_client)

    stored = rows(engine)
    assert [r.id for r in stored] == [i["id"] for i in items]
    assert all(r.has_thumbnail and r.embedding_model for r in stored)
    health = live_client.get("/health").json()
    assert health["pending_thumbnails"] == 0
    assert health["pending_embeddings"] == 0
    assert health["database"] == "ok"


def test_concurrent_uploads_of_the_same_bytes_make_one_row(
    live_client: TestClient, engine: Engine, storage_root: Path
) -> None:
    data = jpeg_bytes((256, 256), seed=99)
    clients = 8
    barrier = threading.Barrier(clients)

    def send(n: int) -> dict:
        barrier.wait()
        return post_files(live_client, (f"copy{n}.jpg", data))[0]

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(send, range(clients)))

    assert len({a["id"] for a in answers}) == 1
    assert sum(not a["is_duplicate"] for a in answers) == 1
    assert sum(a["is_duplicate"] for a in answers) == clients - 1
    assert len(rows(engine)) == 1
    wait_for_worker(live_client)
    assert len(list((storage_root / "images").iterdir())) == 1
    assert list((storage_root / "incoming").iterdir()) == []


def test_restart_backfills_missing_work_and_a_broken_file_does_not_block_others(
    settings: Settings, clean_database: Engine, tiny_embedder: ManagedEmbedder, storage_root: Path
) -> None:
    with TestClient(create_app(settings, embedder=tiny_embedder)) as client:
        items = post_files(
            client, *[(f"{i}.jpg", jpeg_bytes((120, 90), seed=200 + i)) for i in range(4)]
        )
        wait_for_worker(client)

    # As if the server died before processing: nothing done yet, and one file damaged.
    with Session(clean_database) as session, session.begin():
        session.execute(
            update(Image).values(has_thumbnail=False, features=None, embedding_model=None)
        )
    (storage_root / items[1]["file_path"]).write_bytes(b"\xff\xd8 broken on disk")

    with TestClient(create_app(settings, embedder=tiny_embedder)) as client:
        wait_for_worker(client)
        listed = {i["id"]: i for i in client.get("/images/").json()}
        health = client.get("/health").json()

    broken = items[1]["id"]
    assert listed[broken]["processing_error"]
    assert not listed[broken]["has_embedding"]
    for item in items:
        if item["id"] != broken:
            assert listed[item["id"]]["has_thumbnail"]
            assert listed[item["id"]]["has_embedding"]
            assert listed[item["id"]]["processing_error"] is None
    assert health["failed_images"] == 1
    assert health["pending_embeddings"] == 0


def test_start_up_reconciles_interrupted_file_operations(
    settings: Settings, clean_database: Engine, tiny_embedder: ManagedEmbedder, storage_root: Path
) -> None:
    with TestClient(create_app(settings, embedder=tiny_embedder)) as client:
        [item] = post_files(client, ("kept.jpg", jpeg_bytes(seed=300)))
        wait_for_worker(client)
    images = storage_root / "images"
    # A committed upload whose move did not happen, an uncommitted spool, an orphan.
    (images / item["filename"]).rename(storage_root / "incoming" / item["filename"])
    (storage_root / "incoming" / "abc.part").write_bytes(b"half an upload")
    (images / "deadbeef.jpg").write_bytes(jpeg_bytes(seed=301))

    with TestClient(create_app(settings, embedder=tiny_embedder)) as client:
        assert client.get(f"/images/{item['id']}").status_code == 200

    assert sorted(p.name for p in images.iterdir()) == [item["filename"]]
    assert list((storage_root / "incoming").iterdir()) == []


def test_start_up_beside_a_live_process_removes_only_stale_leftovers(
    settings: Settings, clean_database: Engine, storage_root: Path
) -> None:
    """Issue 10, item 3: with another process holding the storage lease, a file in incoming/
    may be an upload in flight; only one older than any upload can take is removed."""
    ensure_storage_dirs(settings)
    incoming = storage_root / "incoming"
    fresh = incoming / "in-flight.part"
    staged = incoming / "0123456789abcdef.jpg"  # staged, its row not committed yet
    writing = storage_root / "thumbnails" / ".abc.jpg.0123.tmp"  # a worker's write
    stale = incoming / "crashed-long-ago.part"
    for path in (fresh, staged, writing, stale):
        path.write_bytes(b"bytes")
    long_ago = time.time() - STALE_SECONDS - 60
    os.utime(stale, (long_ago, long_ago))
    factory = sessionmaker(clean_database)

    first = StorageLease.acquire(storage_root)
    assert first.alone
    first.share()
    second = StorageLease.acquire(storage_root)
    try:
        assert not second.alone
        report = reconcile_storage(factory, settings, alone=second.alone)
    finally:
        second.release()
        first.release()
    assert report.removed_incoming == 1
    assert sorted(p.name for p in incoming.iterdir()) == sorted([fresh.name, staged.name])
    assert writing.exists()

    # Alone (every other process gone): a crash's leftovers all go.
    lease = StorageLease.acquire(storage_root)
    try:
        assert lease.alone
        reconcile_storage(factory, settings, alone=lease.alone)
    finally:
        lease.release()
    assert list(incoming.iterdir()) == []
    assert not writing.exists()


def test_transient_failures_keep_the_batch_queued_until_it_succeeds() -> None:
    """Issue 10, item 1: a failed batch used to be logged and dropped."""
    faults: list[Exception] = [
        OperationalError("SELECT", {}, ConnectionError("database down")),
        OSError(errno.ENOSPC, "No space left on device"),
        OperationalError("UPDATE", {}, ConnectionError("server closed the connection")),
    ]
    calls: list[list[int]] = []
    done: list[int] = []

    def process(ids: list[int]) -> None:
        calls.append(ids)
        if faults:
            raise faults.pop(0)
        done.extend(ids)

    worker = ProcessingWorker(process, batch_size=4, backoff=Backoff(first=0.01, cap=0.05))
    worker.start()
    try:
        worker.submit(range(1, 7))
        assert worker.wait_idle(timeout=30)
    finally:
        worker.stop()
    assert sorted(done) == [1, 2, 3, 4, 5, 6]
    assert calls[:4] == [[1, 2, 3, 4]] * 4  # the same batch, first in line, until it passed
    assert worker.queued == 0


def test_a_bug_is_not_retried_forever(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[list[int]] = []

    def process(ids: list[int]) -> None:
        calls.append(ids)
        if ids == [1]:
            raise ValueError("a bug")

    worker = ProcessingWorker(process, batch_size=1, backoff=Backoff(first=0.01, cap=0.05))
    worker.start()
    try:
        worker.submit([1, 2])
        assert worker.wait_idle(timeout=30)
    finally:
        worker.stop()
    assert calls == [[1], [2]]
    assert "processing images [1] failed" in caplog.text


def test_stop_leaves_the_queue_and_does_not_wait_for_it() -> None:
    """Issue 10, item 14: stopping used to process the whole queue first (up to 30 s)."""
    started = threading.Event()
    release = threading.Event()
    processed: list[list[int]] = []

    def process(ids: list[int]) -> None:
        started.set()
        release.wait(10)
        processed.append(ids)

    worker = ProcessingWorker(process, batch_size=2)
    worker.start()
    worker.submit(range(10))
    assert started.wait(10)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    release.set()
    stopper.join(30)
    assert not stopper.is_alive()
    assert processed == [[0, 1]]  # the batch in hand is finished, the rest left queued
    assert worker.queued == 8


def test_storage_that_cannot_be_read_marks_no_image_failed(
    live_client: TestClient, settings: Settings, engine: Engine, storage_root: Path
) -> None:
    """Issue 10, item 1: only a file that is itself broken is marked failed; unreadable
    storage (here the images folder gone, as with a mount that went away) is retried."""
    items = post_files(live_client, *[(f"{i}.jpg", jpeg_bytes(seed=400 + i)) for i in range(3)])
    wait_for_worker(live_client)
    ids = [item["id"] for item in items]
    with Session(engine) as session, session.begin():
        session.execute(update(Image).values(has_thumbnail=False, quality_score=None))
    images = storage_root / "images"
    images.rename(storage_root / "images-away")
    factory = sessionmaker(engine)
    with pytest.raises(FileNotFoundError):
        process_images(factory, settings, None, ids)
    assert all(row.processing_error is None for row in rows(engine))

    (storage_root / "images-away").rename(images)
    summary = process_images(factory, settings, None, ids)
    assert (summary.thumbnails, summary.failures) == (3, 0)


def after_the_first_session(factory: sessionmaker[Session], action: Callable[[], object]) -> None:
    """Run `action` once, when the first session of `factory` ends its transaction."""
    done = threading.Event()

    @event.listens_for(factory, "after_transaction_end")
    def once(_session: Session, _transaction: object) -> None:
        if not done.is_set():
            done.set()
            action()


def _deleted_while_planned(
    live_client: TestClient, engine: Engine, storage_root: Path
) -> tuple[int, int, sessionmaker[Session]]:
    """Two processed images made to need their thumbnails again, and a session factory that,
    once the worker has planned them, deletes the first through the API: the interleaving of a
    delete racing the worker. The first one's pixels wait on the hand-off shelf (as an upload's
    do), so the worker still writes its thumbnail, after the delete removed the old one."""
    items = post_files(live_client, *[(f"{i}.jpg", jpeg_bytes(seed=450 + i)) for i in range(2)])
    wait_for_worker(live_client)
    deleted, kept = (item["id"] for item in items)
    with Session(engine) as session, session.begin():
        session.execute(update(Image).values(has_thumbnail=False))
        row = session.get_one(Image, deleted)
        with PILImage.open(storage_root / row.file_path) as img:
            assert decode_shelf().offer(row.image_hash, img.convert("RGB"), 4096)
    for thumbnail in (storage_root / "thumbnails").iterdir():
        thumbnail.unlink()
    factory = sessionmaker(engine)

    def delete() -> None:
        assert live_client.delete(f"/images/{deleted}").status_code == 200

    after_the_first_session(factory, delete)

    return deleted, kept, factory


def test_a_batch_failing_after_a_delete_leaves_no_thumbnail_of_the_deleted_image(
    live_client: TestClient, settings: Settings, engine: Engine, storage_root: Path
) -> None:
    """The orphan thumbnail CI found (tests/system/test_request_races.py): the batch fails
    after writing the thumbnail of an image deleted meanwhile, here because the next image's
    storage is away (a busy decode budget does the same), and its retry never sees that image."""
    deleted, kept, factory = _deleted_while_planned(live_client, engine, storage_root)
    images = storage_root / "images"

    after_the_first_session(factory, lambda: images.rename(storage_root / "away"))

    with pytest.raises(FileNotFoundError):
        process_images(factory, settings, None, [deleted, kept])
    (storage_root / "away").rename(images)

    assert list((storage_root / "thumbnails").iterdir()) == []
    summary = process_images(factory, settings, None, [deleted, kept])
    assert summary.thumbnails == 1
    assert len(list((storage_root / "thumbnails").iterdir())) == 1


def test_a_batch_whose_results_cannot_be_stored_leaves_no_thumbnail_of_a_deleted_image(
    live_client: TestClient, settings: Settings, engine: Engine, storage_root: Path, on_sqlite: bool
) -> None:
    deleted, kept, factory = _deleted_while_planned(live_client, engine, storage_root)
    prepared = prepare_images(factory, settings, None, [deleted, kept])
    assert len(list((storage_root / "thumbnails").iterdir())) == 2

    gone = (
        f"sqlite:///{storage_root}/no-such-folder/x.db"
        if on_sqlite
        else "postgresql+psycopg2://postgres@127.0.0.1:1/gone"
    )
    unreachable = create_db_engine(gone)
    try:
        with pytest.raises(OperationalError):
            finish_images(sessionmaker(unreachable), prepared)
    finally:
        unreachable.dispose()
    # Which image was deleted could not be asked: neither thumbnail is recorded, both go, and
    # the retry makes the live one again.
    assert list((storage_root / "thumbnails").iterdir()) == []


class _SizeOnlyEmbedder:
    """What the decode stage reads of an embedder: its id and its input size."""

    model_id = "size-only"
    input_size = 224


@pytest.mark.parametrize(
    ("name", "data", "decoded"),
    [
        # JPEG drafted at 1/4 for the 512-pixel thumbnail: 1000x750.
        ("big.jpg", jpeg_bytes((4000, 3000), seed=31), (1000, 750)),
        # A PNG has no draft: decoded whole.
        ("big.png", png_bytes((1400, 1050), seed=32), (1400, 1050)),
    ],
)
def test_the_model_gets_the_shared_decode_reduced_to_twice_its_input(
    live_client: TestClient,
    settings: Settings,
    engine: Engine,
    name: str,
    data: bytes,
    decoded: tuple[int, int],
) -> None:
    """The one decode serves the 512-pixel thumbnail; the model's own resize needs a quarter
    of those pixels (or less), and they cross to the model process: box-reduced first."""
    [item] = post_files(live_client, (name, data))
    wait_for_worker(live_client)
    with Session(engine) as session, session.begin():
        # The thumbnail to make again: the decode is then at its 512 pixels.
        session.execute(update(Image).values(has_thumbnail=False))
    factory = sessionmaker(engine)
    embedder = cast("Embedder", _SizeOnlyEmbedder())
    prepared = prepare_images(factory, settings, embedder, [item["id"]])
    [(_, pixels)] = prepared.to_embed
    factor = max(decoded) // (2 * 224)
    assert pixels.size == (-(-decoded[0] // factor), -(-decoded[1] // factor))
    assert min(pixels.size) >= 224
    assert max(pixels.size) >= 2 * 224


class _NamingPool(ThreadPoolExecutor):
    """A real two-thread pool that notes which of its threads ran each task."""

    def __init__(self) -> None:
        super().__init__(2, "decode")
        self.ran_on: set[str] = set()
        self._noted = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        def noted():  # type: ignore[no-untyped-def]
            with self._noted:
                self.ran_on.add(threading.current_thread().name)
            return fn(*args, **kwargs)

        return super().submit(noted)


def test_a_batch_spread_over_decode_threads_makes_what_one_thread_makes(
    live_client: TestClient, settings: Settings, engine: Engine, storage_root: Path
) -> None:
    """Issue 22, overlap: the decode stage spreads a batch over its threads (one per core);
    each image gets the same thumbnail and quality as on one thread, the model's inputs keep
    the batch's order, and a broken file is marked failed without costing its batch-mates."""
    items = post_files(
        live_client, *[(f"{i}.jpg", jpeg_bytes((640, 480), seed=500 + i)) for i in range(6)]
    )
    wait_for_worker(live_client)
    ids = [item["id"] for item in items]
    (storage_root / items[2]["file_path"]).write_bytes(b"\xff\xd8 broken on disk")
    factory = sessionmaker(engine)
    embedder = cast("Embedder", _SizeOnlyEmbedder())
    made = {}
    for pool in (None, _NamingPool()):
        with Session(engine) as session, session.begin():
            session.execute(
                update(Image).values(has_thumbnail=False, quality_score=None, quality_version=None)
            )
        for thumbnail in (storage_root / "thumbnails").iterdir():
            thumbnail.unlink()
        prepared = prepare_images(factory, settings, embedder, ids, pool)
        made[pool is None] = (
            [job.image_id for job, _ in prepared.to_embed],
            [img.tobytes() for _, img in prepared.to_embed],
            [
                {k: v for k, v in job.values.items() if k != "processing_error"}
                for job in prepared.jobs
            ],
            [job.values.get("processing_error") is not None for job in prepared.jobs],
            sorted(p.read_bytes() for p in (storage_root / "thumbnails").iterdir()),
        )
        if pool is not None:
            pool.shutdown()
            assert pool.ran_on == {"decode_0", "decode_1"}

    assert made[False] == made[True]
    in_order, _, _, failed, thumbnails = made[False]
    assert in_order == [i for i in ids if i != ids[2]]
    assert failed == [i == ids[2] for i in ids]
    assert len(thumbnails) == 5
