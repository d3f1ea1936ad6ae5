"""Races against the real server: separate clients, real sockets, the real worker."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from database.models import Image
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess

pytestmark = pytest.mark.slow


def run_together(count: int, call) -> list:  # type: ignore[no-untyped-def]
    """Run `call(n)` from `count` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def one(n: int):  # type: ignore[no-untyped-def]
        barrier.wait()
        return call(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def upload(url: str, name: str, data: bytes) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=60) as client:  # a separate client each time
        return client.post("/images/upload", files=[("files", (name, data, "image/jpeg"))])


def count_rows(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Image)) or 0)


def test_twenty_clients_uploading_the_same_bytes_make_one_row(
    server: ServerProcess, clean_database: Engine
) -> None:
    data = jpeg_bytes((640, 480), seed=7)
    responses = run_together(20, lambda n: upload(server.url, f"same{n}.jpg", data))

    assert [r.status_code for r in responses] == [200] * 20
    items = [r.json()[0] for r in responses]
    assert len({item["id"] for item in items}) == 1
    assert sum(item["is_duplicate"] for item in items) == 19
    assert count_rows(clean_database) == 1
    server.wait_until_processed()
    storage = Path(server.env["STORAGE_ROOT"])
    assert len(list((storage / "images").iterdir())) == 1
    assert list((storage / "incoming").iterdir()) == []


def test_fifty_clients_uploading_distinct_files_make_fifty_rows(
    server: ServerProcess, clean_database: Engine
) -> None:
    responses = run_together(
        50, lambda n: upload(server.url, f"d{n}.jpg", jpeg_bytes((320, 240), seed=100 + n))
    )
    assert [r.status_code for r in responses] == [200] * 50
    assert len({r.json()[0]["id"] for r in responses}) == 50
    assert count_rows(clean_database) == 50
    health = server.wait_until_processed()
    assert health["failed_images"] == 0


def test_concurrent_analyses_of_one_batch_both_finish_consistently(
    server: ServerProcess, clean_database: Engine
) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        files = [("files", (f"{n}.jpg", jpeg_bytes(seed=200 + n), "image/jpeg")) for n in range(12)]
        ids = [item["id"] for item in client.post("/images/upload", files=files).json()]
        batch_id = client.post("/batches/", json={"name": "race", "image_ids": ids}).json()["id"]
        server.wait_until_processed()
        body = {"min_cluster_size": 2, "min_samples": 1}

        responses = run_together(
            2,
            lambda _n: httpx.put(
                f"{server.url}/batches/{batch_id}/analyze", json=body, timeout=120
            ),
        )
        final = client.get(f"/batches/{batch_id}").json()

    assert [r.status_code for r in responses] == [200, 200]
    assert final["status"] == "complete"
    labels = [a["group_label"] for a in final["image_associations"]]
    assert None not in labels
    # Deterministic grouping: both runs computed the same result, and that is what is stored.
    for response in responses:
        assert response.json()["image_associations"] == final["image_associations"]


def test_analyze_while_embeddings_are_being_written_is_409_never_partial(
    server: ServerProcess, clean_database: Engine
) -> None:
    # The model loads in its own process after start-up; until then analyze answers 503 "still
    # loading". Here it has loaded, and the embeddings are what is missing.
    server.wait_until_model_loaded()
    with httpx.Client(base_url=server.url, timeout=120) as client:
        files = [
            ("files", (f"{n}.jpg", jpeg_bytes((1600, 1200), seed=300 + n), "image/jpeg"))
            for n in range(24)
        ]
        ids = [item["id"] for item in client.post("/images/upload", files=files).json()]
        batch_id = client.post("/batches/", json={"name": "early", "image_ids": ids}).json()["id"]
        early = client.put(f"/batches/{batch_id}/analyze", json={})
        during = client.get(f"/batches/{batch_id}").json()
        server.wait_until_processed()
        later = client.put(f"/batches/{batch_id}/analyze", json={})

    assert early.status_code == 409, early.text
    assert "no embedding yet" in early.json()["detail"]
    assert during["status"] == "pending"
    assert {a["group_label"] for a in during["image_associations"]} == {None}
    assert later.status_code == 200
    assert None not in {a["group_label"] for a in later.json()["image_associations"]}
