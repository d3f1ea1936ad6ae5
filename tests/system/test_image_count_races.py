"""X-Total-Count stays exact while clients upload and delete at once (the real server, real
sockets): the count is kept by triggers in the writers' transactions, not counted per list."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from database.models import Image
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess

pytestmark = pytest.mark.slow

UPLOADERS, EACH = 6, 5
DELETERS = 3


def _upload(client: httpx.Client, seed: int) -> int:
    files = [("files", (f"{seed}.jpg", jpeg_bytes((64, 48), seed=seed), "image/jpeg"))]
    response = client.post("/images/upload", files=files)
    assert response.status_code == 200, response.text
    return int(response.json()[0]["id"])


def test_the_total_count_is_exact_under_concurrent_uploads_and_deletes(
    server: ServerProcess, clean_database: Engine
) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        doomed = [_upload(client, seed) for seed in range(DELETERS * EACH)]
    stop = threading.Event()
    seen: list[tuple[int, int]] = []  # (X-Total-Count, images listed) of each answer
    barrier = threading.Barrier(UPLOADERS + DELETERS + 2)

    def uploader(n: int) -> list[int]:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            barrier.wait()
            return [_upload(client, 1000 + n * EACH + k) for k in range(EACH)]

    def deleter(n: int) -> list[int]:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            barrier.wait()
            for image_id in doomed[n * EACH : (n + 1) * EACH]:
                assert client.delete(f"/images/{image_id}").status_code == 200
        return []

    def reader(_n: int) -> list[int]:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            barrier.wait()
            while not stop.is_set():
                response = client.get("/images/", params={"limit": 10_000})
                assert response.status_code == 200, response.text
                seen.append((int(response.headers["X-Total-Count"]), len(response.json())))
        return []

    with ThreadPoolExecutor(UPLOADERS + DELETERS + 2) as pool:
        readers = [pool.submit(reader, n) for n in range(2)]
        writers = [pool.submit(uploader, n) for n in range(UPLOADERS)]
        writers += [pool.submit(deleter, n) for n in range(DELETERS)]
        uploaded = [image_id for writer in writers for image_id in writer.result()]
        stop.set()
        for future in readers:
            future.result()

    assert len(set(uploaded)) == UPLOADERS * EACH
    # Each answer's count and list come from one snapshot: always equal, mid-race included.
    assert len({total for total, _ in seen}) > 1, "no answer came mid-race"
    assert all(total == listed for total, listed in seen), seen
    with Session(clean_database) as session:
        rows = int(session.scalar(select(func.count()).select_from(Image)) or 0)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        final = client.get("/images/", params={"limit": 1})
    assert rows == UPLOADERS * EACH
    assert final.headers["X-Total-Count"] == str(rows)
