"""Root, health, CORS and the optional API key."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from starlette.formparsers import MultiPartParser

from api import upload_spool
from api.main import create_app
from config import Settings
from database.models import Image
from processing.feature_extraction import ManagedEmbedder
from tests.api.helpers import new_batch, upload
from tests.factories import jpeg_bytes
from utils.file_handling import HashingSpool


def test_root(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "Pixal Judge" in response.json()["message"]


def test_health_reports_database_model_and_progress(
    client: TestClient, tiny_dinov3_dir: Path
) -> None:
    client.post("/images/upload", files=[("files", ("a.jpg", jpeg_bytes(seed=1), "image/jpeg"))])
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["model"]["state"] == "configured"
    assert body["model"]["active_model"] == str(tiny_dinov3_dir)
    assert body["model"]["fallback_reason"] is None
    assert (body["pending_thumbnails"], body["pending_embeddings"], body["failed_images"]) == (
        0,
        0,
        0,
    )


def test_unloadable_model_falls_back_and_health_says_ok_and_why(
    settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-model"
    broken = settings.model_copy(update={"embedding_model": str(missing)})
    app = create_app(
        broken,
        session_factory=session_factory,
        embedder=ManagedEmbedder(broken.embedder_spec),
        threaded_worker=False,
    )
    with TestClient(app) as client:
        [item] = client.post(
            "/images/upload", files=[("files", ("a.jpg", jpeg_bytes(seed=2), "image/jpeg"))]
        ).json()
        body = client.get("/health").json()
        listed = client.get("/images/").json()

    # The documented default path without a model hub: working, so "ok", with the reason.
    assert body["status"] == "ok"
    assert body["model"]["state"] == "fallback"
    assert body["model"]["configured_model"] == str(missing)
    assert body["model"]["active_model"] == "efficientnet-lite0+mac"
    assert "EMBEDDING_MODEL" in body["model"]["fallback_reason"]
    # The fallback encoder did the work.
    assert listed[0]["id"] == item["id"]
    assert listed[0]["has_embedding"] is True


def test_configured_model_failing_without_fallback_is_degraded(
    settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    broken = settings.model_copy(
        update={"embedding_model": str(tmp_path / "no-such-model"), "embedding_fallback": False}
    )
    app = create_app(
        broken,
        session_factory=session_factory,
        embedder=ManagedEmbedder(broken.embedder_spec),
        threaded_worker=False,
    )
    with TestClient(app) as client:
        client.post(
            "/images/upload", files=[("files", ("a.jpg", jpeg_bytes(seed=3), "image/jpeg"))]
        )
        body = client.get("/health").json()
    assert body["status"] == "degraded"
    assert body["model"]["state"] == "failed"
    assert body["model"]["active_model"] is None
    assert "EMBEDDING_MODEL" in body["model"]["fallback_reason"]


def test_a_deleted_storage_directory_is_made_again_one_in_the_way_is_degraded(
    client: TestClient, settings: Settings
) -> None:
    assert client.get("/health").json()["storage"] == "ok"
    settings.thumbnails_dir.rmdir()
    assert client.get("/health").json()["storage"] == "ok"
    assert settings.thumbnails_dir.is_dir()
    settings.thumbnails_dir.rmdir()
    settings.thumbnails_dir.write_bytes(b"")  # a file where the folder should be
    body = client.get("/health").json()
    assert (body["status"], body["storage"]) == ("degraded", "unwritable")


def test_cors_allows_the_frontend_origin(client: TestClient) -> None:
    response = client.options(
        "/images/",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
    )
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    other = client.options(
        "/images/",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in other.headers


@pytest.fixture
def keyed_client(
    settings: Settings, session_factory: sessionmaker[Session], tiny_embedder: ManagedEmbedder
):
    keyed = settings.model_copy(update={"api_key": SecretStr("s3cret")})
    app = create_app(
        keyed, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/health", "/docs", "/openapi.json"])
def test_open_paths_need_no_key(keyed_client: TestClient, path: str) -> None:
    assert keyed_client.get(path).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}],
)
def test_missing_or_wrong_key_is_401(keyed_client: TestClient, headers: dict) -> None:
    for path in ("/images/", "/batches/"):
        response = keyed_client.get(path, headers=headers)
        assert response.status_code == 401
        assert "API key" in response.json()["detail"]


@pytest.mark.parametrize("headers", [{"X-API-Key": "s3cret"}, {"Authorization": "Bearer s3cret"}])
def test_right_key_is_accepted(keyed_client: TestClient, headers: dict) -> None:
    assert keyed_client.get("/images/", headers=headers).status_code == 200
    assert keyed_client.get("/batches/", headers=headers).status_code == 200


SPEC_OPERATIONS = {
    ("post", "/images/upload"): "uploadImages",
    ("get", "/images/"): "getAllImages",
    ("get", "/images/{image_id}"): "getImageFile",
    ("get", "/images/thumbnail/{image_id}"): "getImageThumbnail",
    ("get", "/images/metadata/{image_id}"): "getImageMetadata",
    ("delete", "/images/{image_id}"): "deleteImage",
    ("post", "/batches/"): "createBatch",
    ("get", "/batches/"): "getAllBatches",
    ("get", "/batches/{batch_id}"): "getBatch",
    ("put", "/batches/{batch_id}"): "renameBatch",
    ("delete", "/batches/{batch_id}"): "deleteBatch",
    ("post", "/batches/{batch_id}/images"): "addImagesToBatch",
    ("delete", "/batches/{batch_id}/images"): "removeImagesFromBatch",
    ("post", "/batches/{batch_id}/upload-and-add"): "uploadAndAddImagesToBatch",
    ("put", "/batches/{batch_id}/analyze"): "analyzeBatch",
    ("put", "/batches/{batch_id}/groups"): "updateGroupsInBatch",
    ("post", "/batches/{batch_id}/groups/{group_label}/rank"): "rankGroupImages",
}


def test_openapi_keeps_the_frontend_contract(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    found = {
        (method, path): operation["operationId"]
        for path, methods in paths.items()
        for method, operation in methods.items()
    }
    for key, operation_id in SPEC_OPERATIONS.items():
        assert found.get(key) == operation_id, key


def test_vectors_of_another_model_are_not_embeddings_but_pending_work(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    db: Session,
) -> None:
    """Issue 10, item 12: after a restart with another EMBEDDING_MODEL, old vectors said
    `has_embedding: true` and /health showed nothing pending."""
    shots = [("a.jpg", jpeg_bytes(seed=3)), ("b.jpg", jpeg_bytes(seed=4))]
    ids = upload(client, shots)
    batch_id = new_batch(client, ids)
    db.execute(update(Image).values(embedding_model="some-older-model"))
    db.commit()

    # The restart: its model is not loaded yet (the worker loads it in the background).
    restarted = create_app(
        settings,
        session_factory=session_factory,
        embedder=ManagedEmbedder(settings.embedder_spec),
        threaded_worker=False,
    )
    with TestClient(restarted) as again:
        listed = again.get("/images/").json()
        batch = again.get(f"/batches/{batch_id}").json()
        duplicate = again.post(
            "/images/upload", files=[("files", (*shots[0], "image/jpeg"))]
        ).json()
        health = again.get("/health").json()
        assert [i["has_embedding"] for i in listed] == [False, False]
        assert batch["embedded_count"] == 0
        assert [a["image"]["has_embedding"] for a in batch["image_associations"]] == [False] * 2
        assert duplicate[0]["is_duplicate"]
        assert duplicate[0]["has_embedding"] is False
        assert health["pending_embeddings"] == 2

        # Re-embedded by the active model: now they count.
        again.app.state.worker.submit(ids)  # type: ignore[attr-defined]
        health = again.get("/health").json()
        assert health["model"]["active_model"] == settings.embedding_model
        assert [i["has_embedding"] for i in again.get("/images/").json()] == [True, True]
        assert again.get(f"/batches/{batch_id}").json()["embedded_count"] == 2
        assert health["pending_embeddings"] == 0


def test_a_post_without_the_key_is_401_before_its_body_is_parsed(
    keyed_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = []
    monkeypatch.setattr(MultiPartParser, "parse", lambda self: parsed.append(self))
    files = [("files", ("a.jpg", jpeg_bytes(seed=5), "image/jpeg"))]
    response = keyed_client.post("/images/upload", files=files)
    assert response.status_code == 401
    assert "API key" in response.json()["detail"]
    assert parsed == []
    assert keyed_client.post("/batches/", json={"name": "x", "image_ids": [1]}).status_code == 401


class _FullDisk(HashingSpool):
    """The disk fills up under the upload: its first write to disk fails."""

    def _flush(self) -> None:
        if self._buffer:
            raise OSError(errno.ENOSPC, "No space left on device")


# Small: the file's only block is written by the service; large: blocks are written while the
# body is parsed (FastAPI turns that failure into a 400, api/errors.py makes it a 503).
@pytest.mark.parametrize("size", [(64, 48), (1400, 1000)])
def test_a_disk_full_while_an_upload_is_written_is_503_and_leaves_no_file(
    client: TestClient,
    storage_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: tuple[int, int],
) -> None:
    monkeypatch.setattr(upload_spool, "HashingSpool", _FullDisk)
    pixels = np.random.default_rng(6).integers(0, 256, (size[1], size[0], 3), np.uint8)
    data = io.BytesIO()
    PILImage.fromarray(pixels).save(data, "JPEG", quality=95)
    files = [("files", ("a.jpg", data.getvalue(), "image/jpeg"))]
    response = client.post("/images/upload", files=files)
    assert response.status_code == 503, response.text
    assert "Storage is unavailable" in response.json()["detail"]
    assert response.headers["Retry-After"]
    assert list((storage_root / "incoming").iterdir()) == []
