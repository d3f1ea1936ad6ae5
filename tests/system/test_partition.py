"""A silent network partition (the database stops answering, nothing is closed): a real server
answers every request with a JSON 503 and Retry-After instead of hanging, `GET /` (no
database) keeps answering, and the server recovers when the network does."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.system.conftest import ServerProcess
from tests.system.db_proxy import DatabaseProxy

# Far beyond the server's bounds (5 s of silence, then 503 at once), far below "hung".
CAP_SECONDS = 45.0
STALL_SECONDS = 15.0
CLIENTS = 20

pytestmark = pytest.mark.slow  # left out of `make test-quick`


@pytest.fixture
def proxied(
    database_url: str, clean_database: Engine, tmp_path: Path, tiny_dinov3_dir: Path
) -> Iterator[tuple[ServerProcess, DatabaseProxy]]:
    if database_url.startswith("sqlite"):
        pytest.skip("a network partition needs a database over the network (PostgreSQL)")
    proxy = DatabaseProxy.for_url(database_url)
    env = {
        **os.environ,
        "DATABASE_URL": proxy.url_through(database_url),
        "STORAGE_ROOT": str(tmp_path / "assets"),
        "EMBEDDING_MODEL": str(tiny_dinov3_dir),
        "EMBEDDING_DEVICE": "cpu",
        "TORCH_THREADS": "1",
        "API_KEY": "",
        "PYTHONUNBUFFERED": "1",
    }
    server = ServerProcess(env=env, log_path=tmp_path / "server.log")
    server.start()
    try:
        yield server, proxy
    finally:
        proxy.restore()
        server.stop()
        proxy.close()


def test_a_silent_database_answers_503_and_never_hangs(
    proxied: tuple[ServerProcess, DatabaseProxy],
) -> None:
    server, proxy = proxied
    assert httpx.get(f"{server.url}/images/", timeout=30).status_code == 200
    answers: list[httpx.Response | None] = []
    lock = threading.Lock()
    stop = threading.Event()

    def ask(path: str) -> None:
        with httpx.Client(base_url=server.url, timeout=CAP_SECONDS) as client:
            while not stop.is_set():
                try:
                    response: httpx.Response | None = client.get(path)
                except httpx.TimeoutException:
                    response = None
                with lock:
                    answers.append(response)
                if path == "/":
                    time.sleep(0.5)

    threads = [threading.Thread(target=ask, args=("/images/",)) for _ in range(CLIENTS)]
    threads.append(threading.Thread(target=ask, args=("/",)))
    proxy.stall()
    for thread in threads:
        thread.start()
    time.sleep(STALL_SECONDS)
    stop.set()
    for thread in threads:
        thread.join(CAP_SECONDS + 30)
    proxy.restore()

    assert None not in answers, "a request hung past the cap"
    statuses = {response.status_code for response in answers if response is not None}
    assert statuses <= {200, 503}
    unavailable = [r for r in answers if r is not None and r.status_code == 503]
    assert unavailable, "the partition was never noticed"
    for response in unavailable:
        assert response.headers["retry-after"]
        assert "database" in response.json()["detail"].lower()
    roots = [r for r in answers if r is not None and r.request.url.path == "/"]
    assert roots
    assert all(r.status_code == 200 for r in roots)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/images/", timeout=30).status_code == 200:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the server did not recover after the partition")
