"""Camera RAWs and videos through HTTP: a DNG is stored as a DNG and judged on its preview
(or a half-size development), never on its IFD0 thumbnail; a video is a 415."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from PIL import Image

from tests.factories import jpeg_bytes
from tests.raw_factory import DngSpec, dng_bytes


def _upload(
    client: TestClient, name: str, data: bytes, mime: str = "application/octet-stream"
) -> httpx.Response:
    return client.post("/images/upload", files=[("files", (name, data, mime))])


def _stored(storage_root: Path) -> list[str]:
    return sorted(p.name for p in (storage_root / "images").glob("*"))


def test_a_dng_is_stored_as_a_dng_and_judged_on_its_preview(
    client: TestClient, storage_root: Path
) -> None:
    data = dng_bytes(DngSpec(size=(600, 400), preview_size=(1500, 1000), orientation=8))
    response = _upload(client, "IMG_0001.DNG", data)
    assert response.status_code == 200, response.text
    [item] = response.json()
    assert item["filename"].endswith(".dng")

    [shown] = client.get("/images/").json()
    assert shown["processing_error"] is None
    assert shown["has_thumbnail"]
    assert shown["has_embedding"]
    assert shown["quality_score"] is not None

    original = client.get(f"/images/{item['id']}")
    assert original.content == data
    assert original.headers["content-type"] == "image/x-adobe-dng"
    thumbnail = client.get(f"/images/thumbnail/{item['id']}")
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        # From the 1500 x 1000 preview, turned upright (orientation 8): portrait, 512 long.
        assert thumb.size == (341, 512)

    metadata = client.get(f"/images/metadata/{item['id']}").json()
    assert (metadata["width"], metadata["height"]) == (600, 400)  # not the IFD0 thumbnail's
    assert metadata["camera_serial"] == "SN-4242"
    assert metadata["camera_model"] == "Raw Body X1"
    assert metadata["orientation"] == 8
    assert metadata["shot_at_local"].startswith("2024-05-06T07:08:09.25")
    assert metadata["shot_at_offset"] == "+02:00"
    assert _stored(storage_root) == [item["filename"]]


def test_a_dng_without_a_preview_is_developed_at_half_size(client: TestClient) -> None:
    response = _upload(client, "IMG_0002.dng", dng_bytes(DngSpec(preview_size=None)))
    assert response.status_code == 200, response.text
    [item] = response.json()
    [shown] = client.get("/images/").json()
    assert shown["processing_error"] is None
    assert shown["has_thumbnail"]
    assert shown["has_embedding"]
    thumbnail = client.get(f"/images/thumbnail/{item['id']}")
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        assert thumb.size == (300, 200)  # half of the 600 x 400 sensor; never upscaled


def test_a_video_is_refused_as_not_a_photo(client: TestClient, storage_root: Path) -> None:
    mp4 = (
        b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00isomiso2avc1"
        + b"\x00\x00\x00\x10mdat"
        + b"\x00" * 512
    )
    response = _upload(client, "clip.mp4", mp4, "video/mp4")
    assert response.status_code == 415, response.text
    assert "a video, not a photo" in response.json()["detail"]
    assert "HEIF" not in response.json()["detail"]
    assert client.get("/images/").json() == []
    assert _stored(storage_root) == []


def test_a_video_beside_a_photo_is_listed_as_refused(client: TestClient) -> None:
    avi = b"RIFF\x00\x10\x00\x00AVI LIST" + b"\x00" * 512
    response = client.post(
        "/images/upload",
        files=[
            ("files", ("a.jpg", jpeg_bytes((64, 48), seed=3), "image/jpeg")),
            ("files", ("b.avi", avi, "video/x-msvideo")),
        ],
    )
    assert response.status_code == 200, response.text
    assert len(response.json()) == 1
    assert "a video, not a photo" in response.headers["X-Rejected-Files"]
