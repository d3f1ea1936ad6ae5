"""Many concurrent analyses against the real server (PostgreSQL or SQLite, real sockets).

Before: each analysis locked the batch row and held its connection while it waited for the
lock and clustered; sixty of them exhausted the connection pool, and an unrelated
`GET /images/` answered 500 after the pool's 30 s timeout (issue 10, item 11). The clustering
runs in a worker process here (the server's default): it ends with the server, however the
server ends."""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from database.models import Image, ImageBatchAssociation
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess

pytestmark = pytest.mark.slow

ROWS = 8_000
ANALYSES = 60


def add_embedded_images(engine: Engine, model: str, dims: int, count: int) -> list[int]:
    """`count` image rows with vectors of the active model, in bursts of 10 consecutive rows
    (untimed images are read along the upload order), straight into the database (their files
    are never read by an analysis)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(count // 10, dims))
    vectors = centres[np.arange(count) // 10] + 0.1 * rng.normal(size=(count, dims))
    tag = secrets.token_hex(4)
    rows = [
        {
            "filename": f"{tag}-{i}.jpg",
            "original_filename": f"{i}.jpg",
            "file_path": f"missing/{tag}-{i}.jpg",
            "image_hash": f"{tag}{i:056d}",
            "file_size": 1,
            "mime_type": "image/jpeg",
            "features": vectors[i].astype(np.float32).tobytes(),
            "embedding_model": model,
        }
        for i in range(count)
    ]
    with Session(engine) as session:
        session.execute(insert(Image), rows)
        session.commit()
        return list(session.scalars(select(Image.id).where(Image.filename.like(f"{tag}-%"))))


def embedded_like(server: ServerProcess, client: httpx.Client, engine: Engine) -> tuple[str, int]:
    """The model id and vector length of an image the server has embedded (one upload)."""
    first = client.post(
        "/images/upload", files=[("files", ("a.jpg", jpeg_bytes(seed=1), "image/jpeg"))]
    )
    assert first.status_code == 200, first.text
    server.wait_until_processed()
    image_id = first.json()[0]["id"]
    with Session(engine) as session:
        model, features = session.execute(
            select(Image.embedding_model, Image.features).where(Image.id == image_id)
        ).one()
    return model, len(features) // 4


def test_sixty_concurrent_analyses_never_exhaust_the_connection_pool(
    server: ServerProcess, clean_database: Engine
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        like = embedded_like(server, client, clean_database)
        ids = add_embedded_images(clean_database, *like, ROWS)
        batch = client.post("/batches/", json={"name": "big", "image_ids": ids})
        assert batch.status_code == 201, batch.text
        batch_id = batch.json()["id"]

    started = threading.Barrier(ANALYSES + 1)

    def analyze(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=300) as own:
            started.wait()
            return own.put(f"/batches/{batch_id}/analyze", json={})

    with ThreadPoolExecutor(ANALYSES) as pool:
        answers = [pool.submit(analyze, n) for n in range(ANALYSES)]
        started.wait()
        with httpx.Client(base_url=server.url, timeout=300) as other:
            listing = other.get("/images/", params={"limit": 10})
        responses = [answer.result() for answer in answers]

    assert listing.status_code == 200, listing.text
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 503}, statuses
    assert 200 in statuses
    for response in responses:
        body = response.json()  # JSON either way, never a plain-text 500
        if response.status_code == 503:
            assert "busy" in body["detail"]
            assert body["retry_after"] > 0
        else:
            assert body["status"] == "complete"
            assert len(body["image_associations"]) == ROWS
    with httpx.Client(base_url=server.url, timeout=60) as client:
        final = client.get(f"/batches/{batch_id}").json()
    assert final["status"] == "complete"
    assert final["parameters"]["groups"] > 0


def children(pid: int) -> set[int]:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return {int(child) for task in tasks for child in (task / "children").read_text().split()}


def running(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("ending", ["stop", "kill"])
def test_the_clustering_worker_process_ends_with_the_server(
    server: ServerProcess, ending: str
) -> None:
    assert server.process is not None
    pid = server.process.pid
    # The worker process starts with the server, before any analysis.
    assert wait_for(lambda: bool(children(pid)))
    workers = children(pid)

    server.stop() if ending == "stop" else server.kill()

    assert wait_for(lambda: not any(running(pid) for pid in workers)), workers


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks the process has used (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def busiest_child(pid: int, seconds: float = 0.5) -> int:
    """The child of `pid` that used the most CPU over `seconds`."""
    before = {child: cpu_ticks(child) for child in children(pid) if running(child)}
    time.sleep(seconds)
    return max(before, key=lambda child: cpu_ticks(child) - before[child])


def test_the_analysis_process_killed_mid_analysis_is_a_json_503_and_writes_nothing(
    server: ServerProcess, clean_database: Engine
) -> None:
    """SIGKILL (the OOM killer's) of the process running an analysis: the request answers a
    JSON 503 with Retry-After, no label is written, and the next analysis gets a new process."""
    assert server.process is not None
    with httpx.Client(base_url=server.url, timeout=300) as client:
        like = embedded_like(server, client, clean_database)
        ids = add_embedded_images(clean_database, *like, 20_000)
        batch_id = client.post("/batches/", json={"name": "killed", "image_ids": ids}).json()["id"]

        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(client.put, f"/batches/{batch_id}/analyze", json={})
            time.sleep(1.0)  # the analysis is under way: its process is the busy one
            worker = busiest_child(server.process.pid)
            os.kill(worker, signal.SIGKILL)
            lost = answer.result()

        assert lost.status_code == 503, lost.text
        assert lost.headers["Retry-After"].isdigit()
        assert "ended unexpectedly" in lost.json()["detail"]
        with Session(clean_database) as session:
            labels = session.scalars(
                select(ImageBatchAssociation.group_label).where(
                    ImageBatchAssociation.batch_id == batch_id
                )
            ).all()
        assert set(labels) == {None}
        assert len(labels) == 20_000

        again = client.put(f"/batches/{batch_id}/analyze?view=summary", json={})
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "complete"
        assert worker not in children(server.process.pid)
