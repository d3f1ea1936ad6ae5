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

from processing.decode_gate import decode_cost, decode_gate

# Where a transparent image is flattened: white reads as "paper" to a person judging photos.
BACKGROUND = (255, 255, 255)
# Modes Pillow's box `reduce` handles as they are (and that `to_rgb` maps pixel by pixel, so
# reducing first gives the same picture); others are converted first, a strip at a time.
_REDUCIBLE_MODES = {"RGB", "L", "CMYK"}
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


def to_rgb(img: Image.Image, wide_range: tuple[float, float] | None = None) -> Image.Image:
    """8-bit RGB whatever the source mode (CMYK, P, LA/RGBA, 16-bit, float).

    A 16-bit or float image is rescaled to 0..255 over `wide_range` (default: its own, see
    `wide_range`); a strip of a larger image passes the whole image's range."""
    if img.mode == "RGB":
        return img
    if img.mode in _WIDE_MODES:
        low, high = wide_range if wide_range is not None else wide_sample_range(img)
        return Image.fromarray(_wide_to_uint8(np.asarray(img), low, high), mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def wide_sample_range(img: Image.Image) -> tuple[float, float]:
    """The values a 16-bit or float image's samples are mapped from: the extrema of a float
    image, 0..65535 for integers that fit in 16 bits, else the whole int32 range."""
    extrema = img.getextrema()
    low, high = (float(v) for v in extrema[:2])  # type: ignore[arg-type]
    if img.mode == "F":
        return low, high
    return 0.0, 65535.0 if high <= 65535 else float(np.iinfo(np.int32).max)


def _wide_to_uint8(array: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(array.shape, dtype=np.uint8)
    values = array.astype(np.float32)
    values -= low
    values *= 255.0 / (high - low)
    values += 0.5
    if array.dtype.kind == "f":
        np.nan_to_num(values, copy=False)
    return np.clip(values, 0, 255, out=values).astype(np.uint8)


def reduce_factor(size: tuple[int, int], longest_side: int) -> int:
    """The box-reduction factor that keeps the longest side at least twice `longest_side`
    (enough for a good Lanczos or box resize afterwards); 1 when the image is small."""
    if longest_side <= 0:
        return 1
    return max(1, max(size) // (2 * longest_side))


def model_input(img: Image.Image, input_size: int) -> Image.Image:
    """`img` box-reduced as far as it goes while its longest side stays at least twice the
    model's `input_size`: the model's antialiased resize then starts from about the size a
    draft decode at that input size gives, and a quarter of the pixels (the shared decode
    serves the 512-pixel thumbnail) cross to the model process and through its float resize."""
    factor = reduce_factor(img.size, input_size)
    return img if factor < 2 else img.reduce(factor)


@contextmanager
def decoded(img: ImageFile.ImageFile, longest_side: int) -> Iterator[int]:
    """Decode `img` through the decode gate; yield the factor `reduced_rgb` should use.

    JPEG is drafted first (a reduced DCT scale), so its cost is that of the smaller picture.
    The full pixels are released (the image closed) when the block ends, before the gate's
    place is given back."""
    img.draft("RGB", draft_request(img.size, longest_side))
    factor = reduce_factor(img.size, longest_side)
    out_width, out_height = (-(-side // factor) for side in img.size)
    cost = decode_cost(img) + 4 * out_width * out_height
    with decode_gate().admit(cost):
        try:
            img.load()
            yield factor
        finally:
            img.close()


# Rows converted at a time: a strip of a 16000-pixel-wide image is a few MB, whatever its mode.
_STRIP_BYTES = 8 * 1024 * 1024


def reduced_rgb(img: Image.Image, factor: int, orientation: int | None = None) -> Image.Image:
    """Oriented 8-bit RGB of a decoded `img`, box-reduced by `factor`, converted strip by
    strip: however large the picture, only a strip of it is ever held twice.

    `orientation` (EXIF 1..8) overrides the image's own: a RAW's preview is turned as the
    RAW says, whatever its JPEG's EXIF holds."""
    wide_range = wide_sample_range(img) if img.mode in _WIDE_MODES else None
    width, height = img.size
    rows = factor * max(1, _STRIP_BYTES // max(1, width * 4 * factor))
    if rows >= height:
        rgb = _reduced_strip(img, factor, wide_range)
    else:
        rgb = Image.new("RGB", (-(-width // factor), -(-height // factor)))
        for top in range(0, height, rows):
            strip = img.crop((0, top, width, min(height, top + rows)))
            rgb.paste(_reduced_strip(strip, factor, wide_range), (0, top // factor))
    method = _UPRIGHT.get(exif_orientation(img) if orientation is None else orientation)
    if method is not None:
        return rgb.transpose(method)
    # Closing `img` releases its pixels: hand back an image of our own.
    return rgb.copy() if rgb is img else rgb


def _reduced_strip(
    strip: Image.Image, factor: int, wide_range: tuple[float, float] | None
) -> Image.Image:
    if factor < 2:
        return to_rgb(strip, wide_range)
    # Reduce in one byte per pixel where the picture is grey: a quarter of the work of RGB.
    if wide_range is not None:
        grey = Image.fromarray(_wide_to_uint8(np.asarray(strip), *wide_range), mode="L")
        return grey.reduce(factor).convert("RGB")
    if strip.mode == "1":
        return strip.convert("L").reduce(factor).convert("RGB")
    if strip.mode in _REDUCIBLE_MODES:
        return to_rgb(strip.reduce(factor))
    return to_rgb(strip).reduce(factor)


def oriented(img: Image.Image, orientation: int) -> Image.Image:
    """`img` turned as EXIF `orientation` (1..8) says; `img` itself when upright."""
    method = _UPRIGHT.get(orientation)
    return img if method is None else img.transpose(method)


def load_pillow_rgb(path: Path, longest_side: int) -> Image.Image:
    """Decode `path` with Pillow as oriented 8-bit RGB whose longest side is at least
    `longest_side` (or the original size, when smaller), through the decode gate. JPEGs are
    decoded at a reduced DCT scale, other formats box-reduced strip by strip to about twice
    that side. Callers use `processing.photo.load_oriented_rgb`, which also reads RAWs."""
    with open_image(path) as img, decoded(img, longest_side) as factor:
        return reduced_rgb(img, factor)
