"""The storage folders of a real running server deleted, or blocked, under it (issue 18, first
run: uploads answered 200 and the files stranded in incoming/, a WARNING every 5 s).

Afterwards incoming/ is empty, every photo uploaded after the deletion is served, and the log
never says a move failed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess

pytestmark = pytest.mark.slow


def post_photo(server: ServerProcess, seed: int) -> httpx.Response:
    files = [("files", (f"p{seed}.jpg", jpeg_bytes((320, 240), seed=seed), "image/jpeg"))]
    return httpx.post(f"{server.url}/images/upload", files=files, timeout=60)


def test_folders_deleted_or_blocked_under_a_running_server(
    server: ServerProcess, clean_database: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "assets"
    assert post_photo(server, 1).status_code == 200
    server.wait_until_processed()

    for folder in ("images", "thumbnails", "incoming"):
        shutil.rmtree(root / folder)
    response = post_photo(server, 2)
    assert response.status_code == 200, response.text
    image_id = response.json()[0]["id"]
    server.wait_until_processed()
    assert httpx.get(f"{server.url}/images/{image_id}").content == jpeg_bytes((320, 240), seed=2)
    assert httpx.get(f"{server.url}/images/thumbnail/{image_id}").status_code == 200

    (root / "incoming").rmdir()
    (root / "incoming").write_bytes(b"")  # a file where the folder should be
    response = post_photo(server, 3)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["retry-after"]) > 0
    assert server.health()["storage"] == "unwritable"
    (root / "incoming").unlink()
    assert post_photo(server, 3).status_code == 200
    server.wait_until_processed()

    # Only the first photo's original went with the deleted folder; every other row is whole.
    log = server.log_path.read_text()
    assert "could not move" not in log
    assert list((root / "incoming").iterdir()) == []
    assert httpx.get(f"{server.url}/images/{image_id}").status_code == 200
    listed = {item["original_filename"] for item in httpx.get(f"{server.url}/images/").json()}
    assert listed == {"p1.jpg", "p2.jpg", "p3.jpg"}
