"""Camera RAWs and videos through HTTP: a DNG, NEF, CR2, ARW, PEF, RAF, CR3, ORF or RW2 is
stored in its own format and judged on its preview (or a half-size development), never on its
IFD0 thumbnail; a video is a 415."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from processing.sniff import RAW_FORMATS
from tests.factories import jpeg_bytes
from tests.raw_factory import DngSpec
from tests.raw_factory_more import CAMERAS, any_raw_bytes

RAW_KINDS = ["DNG", *CAMERAS]
# The picture LibRaw develops from each (it crops the D700's 600 x 400 by 2 columns a side;
# Sony's rows are 608 wide, Panasonic's 612).
DEVELOPED = dict.fromkeys(RAW_KINDS, (600, 400)) | {
    "NEF": (596, 400),
    "ARW": (608, 400),
    "RW2": (612, 408),
}
_DNG_BODY = (DngSpec.make, DngSpec.model)


def _upload(
    client: TestClient, name: str, data: bytes, mime: str = "application/octet-stream"
) -> httpx.Response:
    return client.post("/images/upload", files=[("files", (name, data, mime))])


def _stored(storage_root: Path) -> list[str]:
    return sorted(p.name for p in (storage_root / "images").glob("*"))


@pytest.mark.parametrize("kind", RAW_KINDS)
def test_a_raw_is_stored_in_its_format_and_judged_on_its_preview(
    client: TestClient, storage_root: Path, kind: str
) -> None:
    data = any_raw_bytes(kind, preview_size=(1500, 1000), orientation=8, serial="3021234")
    response = _upload(client, "frame", data)  # no extension: recognised by its content
    assert response.status_code == 200, response.text
    [item] = response.json()
    assert item["filename"].endswith(f".{kind.lower()}")

    [shown] = client.get("/images/").json()
    assert shown["processing_error"] is None
    assert shown["has_thumbnail"]
    assert shown["has_embedding"]
    assert shown["quality_score"] is not None

    original = client.get(f"/images/{item['id']}")
    assert original.content == data
    assert original.headers["content-type"] == RAW_FORMATS[kind][1]
    thumbnail = client.get(f"/images/thumbnail/{item['id']}")
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        # From the 1500 x 1000 preview, turned upright (orientation 8): portrait, 512 long.
        assert thumb.size == (341, 512)

    metadata = client.get(f"/images/metadata/{item['id']}").json()
    # The sensor's size, not the IFD0 thumbnail's.
    assert (metadata["width"], metadata["height"]) == DEVELOPED[kind]
    assert metadata["camera_serial"].lstrip("0") == "3021234"  # Canon's: 10 digits
    make, model = (CAMERAS[kind].make, CAMERAS[kind].model) if kind in CAMERAS else _DNG_BODY
    assert (metadata["camera_make"], metadata["camera_model"]) == (make, model)
    assert metadata["orientation"] == 8
    assert metadata["shot_at_local"].startswith("2024-05-06T07:08:09.25")
    assert metadata["shot_at_offset"] == "+02:00"
    assert _stored(storage_root) == [item["filename"]]


@pytest.mark.parametrize("kind", RAW_KINDS)
def test_a_raw_without_a_preview_is_developed_at_half_size(client: TestClient, kind: str) -> None:
    response = _upload(client, f"frame.{kind.lower()}", any_raw_bytes(kind, preview_size=None))
    assert response.status_code == 200, response.text
    [item] = response.json()
    [shown] = client.get("/images/").json()
    assert shown["processing_error"] is None
    assert shown["has_thumbnail"]
    assert shown["has_embedding"]
    assert shown["quality_score"] is not None
    thumbnail = client.get(f"/images/thumbnail/{item['id']}")
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        # Half of the sensor, never upscaled.
        assert thumb.size == (DEVELOPED[kind][0] // 2, DEVELOPED[kind][1] // 2)


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
