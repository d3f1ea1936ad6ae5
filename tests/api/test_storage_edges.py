"""Storage that changes under a running server (issue 18, first run): folders deleted, a
folder that cannot be written, a disk nearly full. Uploads either land whole or answer a JSON
503 with Retry-After; a file never strands in `incoming/`, and `/health` says what is wrong.

"Cannot be written" is a regular file where a folder should be: the tests run as root, whom
permission bits do not stop. "Nearly full" is a real 32 MB tmpfs under the default floor of
64 MB where mounting is allowed, and everywhere a floor set above the test folder's free space.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from config import Settings
from processing.feature_extraction import ManagedEmbedder
from tests.api.helpers import tmpfs_at
from tests.api.test_fault_answers import assert_unavailable
from tests.factories import jpeg_bytes

MB = 1024 * 1024


def post_photo(client: TestClient, seed: int) -> httpx.Response:
    files = [("files", (f"p{seed}.jpg", jpeg_bytes(seed=seed), "image/jpeg"))]
    return client.post("/images/upload", files=files)


def stranded(settings: Settings) -> list[Path]:
    incoming = settings.incoming_dir
    return sorted(incoming.iterdir()) if incoming.is_dir() else []


@pytest.mark.parametrize("deleted", ["images", "thumbnails", "incoming"])
def test_folders_deleted_while_running_are_made_again_and_nothing_strands(
    client: TestClient, settings: Settings, deleted: str
) -> None:
    shutil.rmtree(settings.storage_root / deleted)

    response = post_photo(client, seed=11)
    assert response.status_code == 200, response.text
    image_id = response.json()[0]["id"]
    original = client.get(f"/images/{image_id}")
    assert original.status_code == 200
    assert original.content == jpeg_bytes(seed=11)
    assert client.get(f"/images/thumbnail/{image_id}").status_code == 200
    assert stranded(settings) == []
    assert client.get("/health").json()["storage"] == "ok"


@pytest.mark.parametrize("blocked", ["images", "incoming", "thumbnails"])
def test_an_unwritable_folder_answers_503_and_keeps_nothing(
    client: TestClient, settings: Settings, blocked: str
) -> None:
    folder = settings.storage_root / blocked
    shutil.rmtree(folder)
    folder.write_bytes(b"not a folder")  # mkdir and every write below it fail

    response = post_photo(client, seed=12)
    assert_unavailable(response)
    assert blocked in response.json()["detail"]
    assert stranded(settings) == []
    assert client.get("/images/").json() == []
    health = client.get("/health").json()
    assert (health["status"], health["storage"]) == ("degraded", "unwritable")

    folder.unlink()  # fixed by the operator: the next upload works, nothing to restart
    response = post_photo(client, seed=12)
    assert response.status_code == 200, response.text
    assert client.get(f"/images/{response.json()[0]['id']}").content == jpeg_bytes(seed=12)
    assert stranded(settings) == []


@pytest.mark.parametrize("gone", ["deleted", "a mount gone"])
def test_a_storage_root_gone_is_not_made_again_on_another_disk(
    client: TestClient, settings: Settings, gone: str
) -> None:
    """A root deleted, or a mount gone (its mount point left empty): folders made again there
    would put photos on whatever disk is below, hidden when the mount comes back. Refused."""
    shutil.rmtree(settings.storage_root)
    if gone == "a mount gone":
        settings.storage_root.mkdir()

    response = post_photo(client, seed=15)
    assert_unavailable(response)
    assert "mount gone" in response.json()["detail"]
    health = client.get("/health").json()
    assert (health["status"], health["storage"]) == ("degraded", "unwritable")
    assert client.get("/images/").json() == []
    left = sorted(settings.storage_root.iterdir()) if settings.storage_root.exists() else None
    assert left == ([] if gone == "a mount gone" else None)


@pytest.fixture
def nearly_full_client(
    settings: Settings, session_factory: sessionmaker[Session], tiny_embedder: ManagedEmbedder
) -> Iterator[TestClient]:
    """The app with a free-space floor above what the test's folder has: to the server, the
    disk is nearly full (a real small disk needs the right to mount one)."""
    settings.storage_root.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(settings.storage_root).free // MB
    floored = settings.model_copy(update={"storage_min_free_mb": free_mb + 1024})
    app = create_app(
        floored, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    with TestClient(app) as test_client:
        yield test_client


def test_health_says_full_below_the_free_space_floor(
    client: TestClient, nearly_full_client: TestClient, settings: Settings
) -> None:
    assert settings.storage_min_free_mb == 64  # the documented default
    body = client.get("/health").json()
    assert (body["status"], body["storage"]) == ("ok", "ok")

    body = nearly_full_client.get("/health").json()
    assert (body["status"], body["storage"]) == ("degraded", "full")
    response = post_photo(nearly_full_client, seed=13)
    assert_unavailable(response)
    assert "STORAGE_MIN_FREE_MB" in response.json()["detail"]
    assert stranded(settings) == []


@pytest.fixture
def small_disk(storage_root: Path) -> Iterator[Path]:
    with tmpfs_at(storage_root, 32) as disk:
        yield disk


def test_a_small_real_disk_is_full_under_the_default_floor(
    small_disk: Path, client: TestClient, settings: Settings
) -> None:
    assert shutil.disk_usage(small_disk).free < settings.storage_min_free_bytes
    body = client.get("/health").json()
    assert (body["status"], body["storage"]) == ("degraded", "full")
    response = post_photo(client, seed=14)
    assert_unavailable(response)
    assert "under the floor of 64 MB" in response.json()["detail"]
    assert stranded(settings) == []
