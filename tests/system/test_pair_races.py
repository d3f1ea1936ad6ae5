"""The two halves of RAW+JPEG pairs arriving at the same instant, in separate requests to the
real server: one image per pair, never two, never a 500 (services/companions.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.api.test_raw_jpeg_pairs import camera_jpeg
from tests.raw_factory import DngSpec, dng_bytes
from tests.system.conftest import ServerProcess
from tests.system.test_concurrency import run_together

pytestmark = pytest.mark.slow
PAIRS = 6


def test_halves_of_pairs_racing_make_one_image_each(
    server: ServerProcess, clean_database: Engine, tmp_path: Path
) -> None:
    files: list[tuple[str, bytes]] = []
    for n in range(PAIRS):
        taken = f"2024:05:06 07:{10 + n}:00"
        files.append((f"IMG_{n:04d}.DNG", dng_bytes(DngSpec(seed=n, shot_at=taken))))
        files.append((f"IMG_{n:04d}.JPG", camera_jpeg(taken=taken, seed=20 + n)))

    def send(k: int) -> httpx.Response:
        name, data = files[k]
        with httpx.Client(base_url=server.url, timeout=120) as client:
            return client.post(
                "/images/upload", files=[("files", (name, data, "application/octet-stream"))]
            )

    responses = run_together(len(files), send)

    assert [r.status_code for r in responses] == [200] * len(files), [r.text for r in responses]
    ids = [r.json()[0]["id"] for r in responses]
    assert all(ids[2 * n] == ids[2 * n + 1] for n in range(PAIRS)), ids
    with httpx.Client(base_url=server.url, timeout=60) as client:
        images = client.get("/images/").json()
    assert len(images) == PAIRS
    assert all(image["companion_original_filename"] is not None for image in images)
    assert len(list((tmp_path / "assets" / "images").iterdir())) == 2 * PAIRS
