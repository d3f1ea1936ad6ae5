"""An import in place killed mid-way is finished by another server: every file exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from database.models import Image
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess

pytestmark = pytest.mark.slow

FILES = 96  # six chunks of 16


def progress(server: ServerProcess, import_id: int) -> dict:
    return httpx.get(f"{server.url}/imports/{import_id}", timeout=30).json()  # type: ignore[no-any-return]


def test_an_import_killed_mid_way_is_finished_by_a_live_server_once_per_file(
    server: ServerProcess, clean_database: Engine, tmp_path: Path
) -> None:
    card = tmp_path / "roots" / "card"
    card.mkdir(parents=True)
    for n in range(FILES):
        (card / f"IMG_{n:04d}.JPG").write_bytes(jpeg_bytes((1024, 768), seed=900 + n))
    server.stop()
    server.env.update(IMPORT_ROOTS=str(tmp_path / "roots"), IMPORT_STALE_SECONDS="2")
    server.start()
    # A second server on the same database and storage: it is running, so it never sees an
    # unfinished import as an orphan until its heartbeat is 2 s old.
    other = ServerProcess(env=server.env, log_path=tmp_path / "other.log")
    other.start()
    try:
        response = httpx.post(
            f"{server.url}/imports", json={"path": "card", "batch_name": "card"}, timeout=60
        )
        assert response.status_code == 202, response.text
        import_id = response.json()["id"]
        deadline = time.monotonic() + 300
        while (state := progress(server, import_id))["done"] < 16:
            assert state["status"] in {"pending", "running"}, state
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        server.kill()
        assert state["done"] < FILES, "the kill came too late: the import had finished"

        deadline = time.monotonic() + 300
        while (state := progress(other, import_id))["status"] != "complete":
            assert state["status"] == "running", state
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert (state["found"], state["done"], state["failed"]) == (FILES, FILES, 0)
        assert state["duplicates"] == 0
        batch = httpx.get(f"{other.url}/batches/{state['batch_id']}", timeout=60).json()
        assert len(batch["image_associations"]) == FILES
        with Session(clean_database) as session:
            rows, sources = session.execute(
                select(func.count(), func.count(func.distinct(Image.source_path)))
            ).one()
        assert (rows, sources) == (FILES, FILES)
        assert "resuming import" in (tmp_path / "other.log").read_text()
    finally:
        other.stop()
