"""Pure decode helpers shared by thumbnails, quality and embeddings.

An upload is decoded once, at the smallest JPEG draft scale that still covers what every
consumer needs, then oriented and converted to 8-bit RGB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Where a transparent image is flattened: white reads as "paper" to a person judging photos.
BACKGROUND = (255, 255, 255)
# Modes whose samples do not fit in 8 bits and must be rescaled, not clipped.
_WIDE_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}


def draft_request(size: tuple[int, int], longest_side: int) -> tuple[int, int]:
    """The size to ask `Image.draft` for so that the longest side stays >= `longest_side`."""
    width, height = size
    scale = min(1.0, longest_side / max(width, height, 1))
    return max(1, int(width * scale + 0.999)), max(1, int(height * scale + 0.999))


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB whatever the source mode (CMYK, P, LA/RGBA, 16-bit, float)."""
    if img.mode == "RGB":
        return img
    if img.mode in _WIDE_MODES:
        return Image.fromarray(_wide_to_uint8(np.asarray(img)), mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def _wide_to_uint8(array: np.ndarray) -> np.ndarray:
    values = array.astype(np.float64)
    if array.dtype.kind == "f":
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return np.clip(scaled * 255.0 + 0.5, 0, 255).astype(np.uint8)
    top = 65535.0 if values.max(initial=0) <= 65535 else float(np.iinfo(np.int32).max)
    return np.clip(values * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)


def load_oriented_rgb(path: Path, longest_side: int) -> Image.Image:
    """Decode `path` as oriented 8-bit RGB whose longest side is at least `longest_side`
    (or the original size, when smaller). JPEGs are decoded at a reduced DCT scale."""
    with Image.open(path) as img:
        img.draft("RGB", draft_request(img.size, longest_side))
        img.load()
        oriented = ImageOps.exif_transpose(img)
        return to_rgb(oriented)
