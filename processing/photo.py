"""The one way a stored photo is opened for processing, whatever its format."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from processing.imaging import load_pillow_rgb
from processing.raw import is_raw_file, load_raw_rgb


def load_oriented_rgb(path: Path, longest_side: int) -> Image.Image:
    """`path` as oriented 8-bit RGB whose longest side is at least `longest_side` (or the
    original size, when smaller), through the decode gate: a camera RAW through LibRaw (its
    preview, or a half-size development; see processing.raw), any other image through Pillow
    (JPEG at a reduced DCT scale, others box-reduced strip by strip)."""
    if is_raw_file(path):
        return load_raw_rgb(path, longest_side)
    return load_pillow_rgb(path, longest_side)
