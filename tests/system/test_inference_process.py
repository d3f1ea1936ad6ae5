"""The real server runs its model in a process of its own: kill that process with SIGKILL in
the middle of processing, and every image still gets its vector (its batch is sent again to a
new process); stop the server, and the process ends with it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from database.models import Image
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess
from tests.system.test_analysis_pool import running

pytestmark = [pytest.mark.slow, pytest.mark.one_database]

UPLOADS = 40


def inference_processes(server_pid: int) -> list[int]:
    """The server's spawned children (with ANALYSIS_ISOLATION=thread: the model's process)."""
    pids = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline and running(int(child)):
                pids.append(int(child))
    return pids


def wait_for_one(server_pid: int, other_than: int | None = None, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid for pid in inference_processes(server_pid) if pid != other_than]
        if pids:
            assert len(pids) == 1, pids
            return pids[0]
        time.sleep(0.1)
    raise TimeoutError("no inference process")


def test_sigkill_of_the_inference_process_mid_processing_loses_no_vector(
    server: ServerProcess, clean_database: Engine
) -> None:
    server.stop()
    server.env["ANALYSIS_ISOLATION"] = "thread"  # the model's process is the only spawned one
    server.start()
    assert server.process is not None
    first = wait_for_one(server.process.pid)

    with httpx.Client(base_url=server.url, timeout=120) as client:
        response = client.post(
            "/images/upload",
            files=[
                ("files", (f"shot{n}.jpg", jpeg_bytes((1600, 1200), seed=n), "image/jpeg"))
                for n in range(UPLOADS)
            ],
        )
    assert response.status_code == 200
    ids = {item["id"] for item in response.json()}
    # Killed once the first batches are stored and more are on their way to the model.
    deadline = time.monotonic() + 120
    while (pending := server.health()["pending_embeddings"]) == UPLOADS:
        assert time.monotonic() < deadline, "nothing was embedded"
        time.sleep(0.02)
    os.kill(first, signal.SIGKILL)
    assert pending > 0, "the kill came after the work"

    second = wait_for_one(server.process.pid, other_than=first)
    health = server.wait_until_processed(timeout=600)

    assert health["failed_images"] == 0
    with Session(clean_database) as session:
        stored = session.execute(
            select(Image.features, Image.embedding_model).where(Image.id.in_(ids))
        ).all()
    assert len(stored) == UPLOADS
    assert all(features for features, _ in stored)
    assert {model for _, model in stored} == {health["model"]["active_model"]}
    assert "ended during a batch" in server.log_path.read_text()

    server.stop()
    assert not running(second), "the inference process outlived the server"
