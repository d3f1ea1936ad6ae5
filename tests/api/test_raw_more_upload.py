"""RAF, CR3, ORF and RW2 uploads through HTTP: stored with their own extension, judged on the
preview (or a half-size development), their metadata listed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from processing.sniff import RAW_FORMATS
from tests.api.test_raw_upload import _stored, _upload
from tests.raw_factory_more import CAMERAS, camera_spec, raw_bytes

KINDS = sorted(CAMERAS)


@pytest.mark.parametrize("kind", KINDS)
def test_a_raw_is_stored_as_itself_and_judged_on_its_preview(
    client: TestClient, storage_root: Path, kind: str
) -> None:
    spec = camera_spec(kind, preview_size=(1500, 1000), orientation=8, serial="B0DY-7")
    data = raw_bytes(kind, spec)
    response = _upload(client, "upload.bin", data)  # a name that says nothing
    assert response.status_code == 200, response.text
    [item] = response.json()
    extension, mime = RAW_FORMATS[kind]
    assert item["filename"].endswith(extension)

    [shown] = client.get("/images/").json()
    assert shown["processing_error"] is None
    assert shown["has_thumbnail"]
    assert shown["has_embedding"]
    assert shown["quality_score"] is not None

    original = client.get(f"/images/{item['id']}")
    assert original.content == data
    assert original.headers["content-type"] == mime
    thumbnail = client.get(f"/images/thumbnail/{item['id']}")
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        # From the 1500 x 1000 preview, turned upright (orientation 8): portrait, 512 long.
        assert thumb.size == (341, 512)

    metadata = client.get(f"/images/metadata/{item['id']}").json()
    assert (metadata["width"], metadata["height"]) == spec.size
    assert (metadata["camera_make"], metadata["camera_model"]) == CAMERAS[kind]
    assert metadata["camera_serial"] == "B0DY-7"
    assert metadata["orientation"] == 8
    assert metadata["shot_at_local"].startswith("2024-05-06T07:08:09.25")
    assert metadata["shot_at_offset"] == "+02:00"
    assert _stored(storage_root) == [item["filename"]]


@pytest.mark.parametrize("kind", KINDS)
def test_a_raw_with_a_small_preview_is_developed_at_half_size(
    client: TestClient, kind: str
) -> None:
    spec = camera_spec(kind, preview_size=(900, 600))
    response = _upload(client, f"IMG_0002{RAW_FORMATS[kind][0]}", raw_bytes(kind, spec))
    assert response.status_code == 200, response.text
    [item] = response.json()
    [shown] = client.get("/images/").json()
    assert shown["processing_error"] is None
    assert shown["has_thumbnail"]
    assert shown["has_embedding"]
    thumbnail = client.get(f"/images/thumbnail/{item['id']}")
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        # Half of the sensor, never upscaled; not the 900 x 600 preview.
        assert thumb.size == (spec.size[0] // 2, spec.size[1] // 2)
