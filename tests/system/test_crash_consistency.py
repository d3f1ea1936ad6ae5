"""Kill the real server with SIGKILL mid-upload and mid-embedding; nothing may be lost.

After each restart: every row's file exists, no file without a row is left in storage, every
acknowledged upload has its row, and the start-up backfill finishes every image.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from database.models import Image
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess
from utils.file_handling import thumbnail_relative_path

pytestmark = pytest.mark.slow


def check_storage_matches_rows(engine: Engine, storage_root: Path) -> dict[str, int]:
    with Session(engine) as session:
        rows = list(session.scalars(select(Image)))
    originals = {p.name for p in (storage_root / "images").iterdir()}
    thumbnails = {p.name for p in (storage_root / "thumbnails").iterdir()}
    incoming = list((storage_root / "incoming").iterdir())

    for row in rows:
        assert (storage_root / row.file_path).is_file(), f"row {row.id} lost its file"
        assert row.has_thumbnail, f"row {row.id} has no thumbnail"
        assert (storage_root / thumbnail_relative_path(row.filename)).is_file()
        assert row.embedding_model is not None, f"row {row.id} has no embedding"
        assert row.quality_score is not None, f"row {row.id} has no quality score"
    assert originals == {row.filename for row in rows}, "files without rows in images/"
    assert thumbnails == {thumbnail_relative_path(r.filename).split("/")[1] for r in rows}
    assert incoming == [], "temporary upload files left behind"
    return {"rows": len(rows), "files": len(originals), "thumbnails": len(thumbnails)}


def upload_stream(
    url: str, images: list[bytes], acknowledged: dict[str, int], stop: threading.Event
) -> None:
    """Upload one file per request until told to stop or the server dies."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for n, data in enumerate(images):
            if stop.is_set():
                return
            try:
                response = client.post(
                    "/images/upload", files=[("files", (f"shot{n}.jpg", data, "image/jpeg"))]
                )
            except httpx.HTTPError:
                return  # the server was killed under us
            if response.status_code == 200:
                acknowledged[f"shot{n}"] = response.json()[0]["id"]


def test_sigkill_mid_upload_and_mid_embedding_loses_nothing(
    server: ServerProcess,
    clean_database: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    storage_root = Path(server.env["STORAGE_ROOT"])
    images = [jpeg_bytes((1600, 1200), seed=1000 + n) for n in range(60)]

    # 1. Kill while a stream of uploads is going on.
    acknowledged: dict[str, int] = {}
    stop = threading.Event()
    uploader = threading.Thread(target=upload_stream, args=(server.url, images, acknowledged, stop))
    uploader.start()
    while len(acknowledged) < 8:
        time.sleep(0.05)
    server.kill()
    stop.set()
    uploader.join(timeout=60)
    acked_before_first_kill = dict(acknowledged)
    left_in_incoming = len(list((storage_root / "incoming").iterdir()))

    server.start()
    server.wait_until_processed()
    first = check_storage_matches_rows(clean_database, storage_root)
    with Session(clean_database) as session:
        stored_ids = set(session.scalars(select(Image.id)))
    assert set(acked_before_first_kill.values()) <= stored_ids, "an acknowledged upload was lost"

    # 2. Kill while the worker is embedding a burst of new uploads.
    rest = images[len(acked_before_first_kill) + 1 :]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post(
            "/images/upload",
            files=[("files", (f"late{n}.jpg", data, "image/jpeg")) for n, data in enumerate(rest)],
        )
    assert response.status_code == 200
    late_ids = {item["id"] for item in response.json()}
    # Kill once the worker is part-way through them.
    deadline = time.monotonic() + 60
    pending_at_kill = server.health()["pending_embeddings"]
    while pending_at_kill > len(late_ids) - 3 and time.monotonic() < deadline:
        time.sleep(0.02)
        pending_at_kill = server.health()["pending_embeddings"]
    server.kill()
    assert 0 < pending_at_kill < len(late_ids), "the kill did not land mid-embedding"

    server.start()
    health = server.wait_until_processed()
    second = check_storage_matches_rows(clean_database, storage_root)
    with Session(clean_database) as session:
        stored_ids = set(session.scalars(select(Image.id)))
    assert late_ids <= stored_ids
    assert health["failed_images"] == 0

    with capsys.disabled():
        print(  # noqa: T201 - the issue asks for the figures in the test output
            f"\n[crash test] uploads acknowledged before the first SIGKILL: "
            f"{len(acked_before_first_kill)}, spooled files left by the kill: {left_in_incoming}; "
            f"after restart: {first}; "
            f"second batch of {len(late_ids)} killed with {pending_at_kill} embeddings pending; "
            f"after restart: {second}"
        )
