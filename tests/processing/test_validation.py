"""Upload validation decodes each file once and can hand that decode on: the same oriented
pixels the worker would decode, at the size it asks for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processing.photo import load_oriented_rgb
from processing.validation import InvalidImage, inspect_image_file
from tests.factories import build_exif, jpeg_bytes, png_bytes, tiff_bytes

MAX_PIXELS = 250_000_000
ORIENTATION = 0x0112


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("turned.jpg", jpeg_bytes((2400, 1600), seed=1, exif=build_exif({ORIENTATION: 6}))),
        ("flat.png", png_bytes((1800, 1200), seed=2)),
        ("scan.tif", tiff_bytes((1500, 1000), seed=3)),
    ],
)
def test_the_check_decode_is_the_worker_s_decode(tmp_path: Path, name: str, data: bytes) -> None:
    path = _write(tmp_path, name, data)
    inspected = inspect_image_file(path, MAX_PIXELS, keep_side=512)
    assert inspected.pixels is not None
    expected = load_oriented_rgb(path, 512)
    assert inspected.pixels.mode == "RGB"
    assert inspected.pixels.size == expected.size
    assert max(expected.size) >= 512
    assert np.array_equal(np.asarray(inspected.pixels), np.asarray(expected))


def test_the_stored_size_is_the_file_s_not_the_decode_s(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.jpg", jpeg_bytes((2400, 1600), seed=1))
    inspected = inspect_image_file(path, MAX_PIXELS, keep_side=512)
    assert (inspected.metadata.width, inspected.metadata.height) == (2400, 1600)
    assert inspected.pixels is not None
    assert inspected.pixels.size == (600, 400)


def test_nothing_is_kept_unless_asked(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.jpg", jpeg_bytes((640, 480), seed=1))
    assert inspect_image_file(path, MAX_PIXELS).pixels is None


@pytest.mark.parametrize("cut", [2, 100, 5000])
def test_a_cut_jpeg_is_still_refused(tmp_path: Path, cut: int) -> None:
    path = _write(tmp_path, "cut.jpg", jpeg_bytes((640, 480), seed=20)[:-cut])
    with pytest.raises(InvalidImage, match=r"image could not be decoded \(image file is truncated"):
        inspect_image_file(path, MAX_PIXELS, keep_side=512)
