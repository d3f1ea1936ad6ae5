"""Pure decode helpers shared by validation, thumbnails, quality and embeddings.

An upload is decoded once, at the smallest JPEG draft scale that still covers what every
consumer needs, then oriented and converted to 8-bit RGB.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, TiffImagePlugin

# Where a transparent image is flattened: white reads as "paper" to a person judging photos.
BACKGROUND = (255, 255, 255)
# Modes whose samples do not fit in 8 bits and must be rescaled, not clipped.
_WIDE_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# catch_warnings swaps the process-wide filter list; one opener at a time keeps two threads
# from restoring each other's lists. Only header parsing runs under it, never a decode.
_OPEN_LOCK = threading.Lock()


@functools.cache
def register_image_plugins() -> None:
    """Teach Pillow to open HEIC/HEIF (pillow-heif); done once, on first use.

    Embedded thumbnails stay off: `draft` would otherwise decode one instead of the picture,
    so a damaged main image could pass validation. Depth and auxiliary images are not needed.
    """
    from pillow_heif import register_heif_opener

    register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


@contextmanager
def open_image(path: Path) -> Iterator[ImageFile.ImageFile]:
    """`Image.open` with every plugin registered, ignoring Pillow's warnings about damaged
    metadata (corrupt EXIF, tags past the end of the file): they cost a field, not the photo,
    and must not become errors where warnings are errors."""
    register_image_plugins()
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        img = Image.open(path)
        _parse_exif(img)
    with img:
        yield img


def _parse_exif(img: Image.Image) -> None:
    # Parse now, under the filter, the EXIF the header already holds; Pillow caches it, so
    # later readers (metadata, orientation, a TIFF's own load) do not parse and warn again.
    # A PNG whose eXIf chunk follows the pixels would have to be decoded first: skipped.
    if "exif" not in img.info and not isinstance(img, TiffImagePlugin.TiffImageFile):
        return
    try:
        exif = img.getexif()
        for tag in list(exif):
            exif.get(tag)  # values are unpacked (and warned about) on first access
        for ifd in ExifTags.IFD:
            if ifd in exif:
                exif.get_ifd(ifd)
    except Exception:  # damaged metadata; readers of it cope with what is there
        return


def draft_request(size: tuple[int, int], longest_side: int) -> tuple[int, int]:
    """The size to ask `Image.draft` for so that the longest side stays >= `longest_side`."""
    width, height = size
    scale = min(1.0, longest_side / max(width, height, 1))
    return max(1, int(width * scale + 0.999)), max(1, int(height * scale + 0.999))


def exif_orientation(img: Image.Image) -> int:
    """The EXIF (or XMP) orientation 1..8; 1 when absent or unreadable."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation)
    except Exception:  # a corrupt EXIF block fails in many ways; the picture is still fine
        return 1
    return value if isinstance(value, int) and value in _UPRIGHT else 1


def upright(img: Image.Image) -> Image.Image:
    """`img` turned as its orientation says (a new image), or `img` itself when upright.

    Unlike ImageOps.exif_transpose, nothing re-serialises the EXIF block, which fails on
    damaged metadata; the pixels are all that is needed here.
    """
    method = _UPRIGHT.get(exif_orientation(img))
    return img if method is None else img.transpose(method)


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
    with open_image(path) as img:
        img.draft("RGB", draft_request(img.size, longest_side))
        img.load()
        rgb = to_rgb(upright(img))
        # Closing `img` releases its pixels: hand back an image of our own.
        return rgb.copy() if rgb is img else rgb
