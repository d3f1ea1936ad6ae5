"""Thumbnails look like the Lanczos ones they replaced (utils.file_handling.make_thumbnail).

Pinned on the real frames of tests/data decoded as the worker does (side 512): the same size,
pixels within 0.7 levels of the Lanczos thumbnail on average and 24 at most, and nearly all of
its fine detail (Laplacian energy) kept, so that a thumbnail does not look softer than the photo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from processing.photo import load_oriented_rgb
from processing.quality import laplacian_variance
from utils.file_handling import make_thumbnail

DATA = Path(__file__).parents[1] / "data"
# Real frames larger than the thumbnail: 768 x 576 and 640 wide (video frames).
FRAMES = (
    "real_card/vtest-020.jpg",
    "real_card/vtest-480.jpg",
    "moments/b-portraits-her-crying-00-f008.jpg",
    "moments/a-street-walker-00-f190.jpg",
)


def _lanczos(img: Image.Image, size: int) -> Image.Image:
    thumb = img.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return thumb


def _detail(img: Image.Image) -> float:
    return laplacian_variance(np.asarray(img.convert("L"), dtype=np.float32))


@pytest.mark.parametrize("name", FRAMES)
def test_a_thumbnail_looks_like_the_lanczos_one(name: str) -> None:
    img = load_oriented_rgb(DATA / name, 512)
    assert max(img.size) > 512
    thumb, lanczos = make_thumbnail(img, 512), _lanczos(img, 512)
    assert thumb.size == lanczos.size
    assert max(thumb.size) == 512
    difference = np.abs(np.asarray(thumb, dtype=np.int16) - np.asarray(lanczos, dtype=np.int16))
    assert difference.mean() < 0.7
    assert difference.max() <= 24
    assert _detail(thumb) > 0.75 * _detail(lanczos)


def test_a_small_image_is_kept_as_it_is() -> None:
    img = load_oriented_rgb(DATA / "eyes/carphone-040.png", 512)
    assert max(img.size) < 512
    thumb = make_thumbnail(img, 512)
    assert thumb is not img
    assert np.array_equal(np.asarray(thumb), np.asarray(img))
