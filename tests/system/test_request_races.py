"""Races settled by the database, against the real server (issue 10, items 4 and 5)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from database.models import ImageBatchAssociation
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess
from tests.system.test_concurrency import run_together

pytestmark = pytest.mark.slow


def upload_many(url: str, files: list[tuple[str, bytes]]) -> list[int]:
    with httpx.Client(base_url=url, timeout=120) as client:
        response = client.post(
            "/images/upload", files=[("files", (n, d, "image/jpeg")) for n, d in files]
        )
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


def test_concurrent_adds_of_the_same_images_are_idempotent(
    server: ServerProcess, clean_database: Engine
) -> None:
    ids = upload_many(server.url, [(f"{n}.jpg", jpeg_bytes(seed=500 + n)) for n in range(20)])
    with httpx.Client(base_url=server.url, timeout=60) as client:
        batch_id = client.post("/batches/", json={"name": "race", "image_ids": []}).json()["id"]

    def add(_n: int) -> httpx.Response:
        # As a client should: a 503 (every connection of the server busy with the other 49
        # adds, all waiting on the batch's lock on a loaded machine) is tried again after its
        # Retry-After.
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for _attempt in range(10):
                response = client.post(f"/batches/{batch_id}/images", json={"image_ids": ids})
                if response.status_code != 503:
                    break
                time.sleep(float(response.headers["Retry-After"]))
            return response

    responses = run_together(50, add)

    assert [r.status_code for r in responses] == [200] * 50, [
        r.text for r in responses if r.status_code != 200
    ][:3]
    assert all(r.json()["image_count"] == 20 for r in responses)
    with Session(clean_database) as session:
        count = session.scalar(
            select(func.count())
            .select_from(ImageBatchAssociation)
            .where(ImageBatchAssociation.batch_id == batch_id)
        )
    assert count == 20


def test_thumbnails_racing_deletes_answer_a_whole_picture_or_404(
    server: ServerProcess, clean_database: Engine
) -> None:
    # Large enough that the worker is still busy: some thumbnails are made on demand.
    files = [(f"{n}.jpg", jpeg_bytes((1600, 1200), seed=600 + n)) for n in range(40)]
    ids = upload_many(server.url, files)

    def thumbnail_or_delete(n: int) -> tuple[str, int, bytes]:
        image_id = ids[n // 2]
        with httpx.Client(base_url=server.url, timeout=120) as client:
            if n % 2:
                response = client.delete(f"/images/{image_id}")
            else:
                response = client.get(f"/images/thumbnail/{image_id}")
            return ("delete" if n % 2 else "thumbnail", response.status_code, response.content)

    outcomes = run_together(80, thumbnail_or_delete)

    assert {status for kind, status, _ in outcomes if kind == "delete"} == {200}
    thumbnails = [(status, body) for kind, status, body in outcomes if kind == "thumbnail"]
    assert {status for status, _ in thumbnails} <= {200, 404}, thumbnails
    for status, body in thumbnails:
        if status == 200:
            with PILImage.open(io.BytesIO(body)) as img:
                img.load()  # a whole JPEG, not one cut off
                assert max(img.size) == 512
    server.wait_until_processed()
    storage = Path(server.env["STORAGE_ROOT"])
    for directory in ("images", "thumbnails", "incoming"):
        assert list((storage / directory).iterdir()) == [], directory
    assert "Traceback" not in server.log_path.read_text()


def test_originals_racing_deletes_answer_the_whole_file_or_404(
    server: ServerProcess, clean_database: Engine
) -> None:
    files = [(f"{n}.jpg", jpeg_bytes((1600, 1200), seed=700 + n)) for n in range(30)]
    ids = upload_many(server.url, files)
    original = dict(zip(ids, (data for _, data in files), strict=True))

    def fetch_or_delete(n: int) -> tuple[str, int, int, bytes]:
        image_id = ids[n // 2]
        with httpx.Client(base_url=server.url, timeout=120) as client:
            if n % 2:
                return ("delete", client.delete(f"/images/{image_id}").status_code, image_id, b"")
            response = client.get(f"/images/{image_id}")
            return ("fetch", response.status_code, image_id, response.content)

    outcomes = run_together(60, fetch_or_delete)

    assert {status for kind, status, _, _ in outcomes if kind == "delete"} == {200}
    fetched = [(status, i, body) for kind, status, i, body in outcomes if kind == "fetch"]
    assert {status for status, _, _ in fetched} <= {200, 404}
    assert all(body == original[i] for status, i, body in fetched if status == 200)
    assert "Traceback" not in server.log_path.read_text()
