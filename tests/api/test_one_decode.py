"""Each uploaded photo is decoded once: the upload's check decode is handed on to the worker,
which makes the thumbnail, quality and vector from it."""

from __future__ import annotations

import io
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from processing.decode_gate import DecodeGate
from processing.photo import load_oriented_rgb
from services.background.handoff import decode_shelf
from tests.factories import build_exif, jpeg_bytes, png_bytes
from utils.file_handling import make_thumbnail

ORIENTATION = 0x0112


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The cost of every decode the process's gate admits, in order."""
    admitted: list[int] = []
    real_admit = DecodeGate.admit

    def counting_admit(self: DecodeGate, cost: int) -> AbstractContextManager[None]:
        admitted.append(cost)
        return real_admit(self, cost)

    monkeypatch.setattr(DecodeGate, "admit", counting_admit)
    return admitted


def _upload(client: TestClient, name: str, data: bytes) -> dict[str, object]:
    response = client.post("/images/upload", files=[("files", (name, data, "image/jpeg"))])
    assert response.status_code == 200, response.text
    [item] = response.json()
    [shown] = [i for i in client.get("/images/").json() if i["id"] == item["id"]]
    return dict(shown)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("turned.jpg", jpeg_bytes((2400, 1600), seed=5, exif=build_exif({ORIENTATION: 6}))),
        ("flat.png", png_bytes((1800, 1200), seed=6)),
    ],
)
def test_an_upload_is_decoded_once_for_everything(
    client: TestClient, storage_root: Path, decodes: list[int], name: str, data: bytes
) -> None:
    shown = _upload(client, name, data)
    assert shown["has_thumbnail"] is True
    assert shown["has_embedding"] is True
    assert shown["quality_score"] is not None
    assert shown["processing_error"] is None
    assert len(decodes) == 1, decodes
    assert len(decode_shelf()) == 0  # taken by the worker, nothing left behind


def test_the_thumbnail_is_the_one_a_fresh_decode_gives(
    client: TestClient, storage_root: Path, decodes: list[int]
) -> None:
    data = jpeg_bytes((2400, 1600), seed=7, exif=build_exif({ORIENTATION: 6}))
    shown = _upload(client, "turned.jpg", data)
    thumbnail = client.get(f"/images/thumbnail/{shown['id']}")
    assert thumbnail.status_code == 200
    [original] = (storage_root / "images").iterdir()
    expected = make_thumbnail(load_oriented_rgb(original, 512), 512)
    stored = Image.open(io.BytesIO(thumbnail.content))
    assert stored.size == expected.size == (341, 512)
    assert np.array_equal(np.asarray(stored), np.asarray(_reencoded(expected)))


def _reencoded(img: Image.Image) -> Image.Image:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85, optimize=True)
    out.seek(0)
    return Image.open(out)


def test_a_duplicate_of_a_processed_image_leaves_nothing_on_the_shelf(
    client: TestClient, decodes: list[int]
) -> None:
    data = jpeg_bytes((1200, 800), seed=8)
    first = _upload(client, "a.jpg", data)
    again = _upload(client, "b.jpg", data)
    assert again["id"] == first["id"]
    assert len(decode_shelf()) == 0
