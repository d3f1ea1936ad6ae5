"""Open a camera RAW (NEF, CR2, CR3, ARW, RAF, ORF, RW2, PEF, DNG, ...) as a PIL image.

LibRaw (through rawpy) reads the file. The camera's embedded preview is used when its long
side is at least `PREVIEW_MIN_SIDE` (a JPEG decode, at a reduced DCT scale: no demosaic);
otherwise the sensor data is developed at half size (each 2x2 Bayer block becomes one pixel).
Either way the picture is turned as the RAW's own orientation says, and every decode passes
the decode gate like any other image's.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rawpy
from PIL import Image, ImageFile

from processing.decode_gate import decode_gate
from processing.imaging import decoded, oriented, reduce_factor, reduced_rgb
from processing.sniff import RAW_FORMATS, Sniffed, sniff_file

# A preview at least this long on its long side is good enough to judge the photo by.
PREVIEW_MIN_SIDE = 1024
# LibRaw's flip code -> the EXIF orientation that shows the picture upright
# (LibRaw derives flip from EXIF as "50132467"[orientation & 7]).
_EXIF_FROM_FLIP = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}
# Bytes LibRaw holds per pixel while developing at half size: the raw samples (2 bytes per
# sensor pixel, 4 sensor pixels per output pixel), its 4 x 16-bit working image, 8-bit RGB.
_HALF_SIZE_BYTES_PER_PIXEL = 4 * 2 + 8 + 3
# What LibRaw raises when it cannot read a file, and what rawpy raises for what it does not do.
RAW_ERRORS = (rawpy.LibRawError, rawpy.NotSupportedError)


class RawUnreadable(Exception):
    """LibRaw could not read the RAW; the message says why (for the user)."""


@dataclass(frozen=True, slots=True)
class RawHeader:
    """What LibRaw reads from a RAW's headers, without touching its pixels."""

    kind: str  # a key of processing.sniff.RAW_FORMATS
    width: int  # the developed picture, before orientation
    height: int
    orientation: int  # EXIF 1..8

    @property
    def extension(self) -> str:
        return RAW_FORMATS[self.kind][0]

    @property
    def mime_type(self) -> str:
        return RAW_FORMATS[self.kind][1]


def raw_kind(path: Path, sniffed: Sniffed | None = None) -> str | None:
    """The RAW kind of `path` by its content (see processing.sniff), or None for other files.

    A TIFF that carries a camera's Make but no RAW mark is a RAW when LibRaw opens it as one
    (LibRaw refuses ordinary RGB TIFFs)."""
    sniffed = sniffed or sniff_file(path)
    if sniffed.raw_kind is not None or not sniffed.maybe_raw:
        return sniffed.raw_kind
    try:
        with rawpy.imread(str(path)):
            return "RAW"
    except RAW_ERRORS:
        return None


def is_raw_file(path: Path) -> bool:
    """True when `path` holds a camera RAW (by content, never by name)."""
    return raw_kind(path) is not None


def read_raw_header(path: Path, kind: str) -> RawHeader:
    """Size and orientation as LibRaw reads them; RawUnreadable when it cannot."""
    try:
        with rawpy.imread(str(path)) as raw:
            sizes = raw.sizes
    except RAW_ERRORS as exc:
        raise RawUnreadable(_reason(kind, exc)) from None
    return RawHeader(kind, sizes.width, sizes.height, _EXIF_FROM_FLIP.get(sizes.flip, 1))


def load_raw_rgb(path: Path, longest_side: int) -> Image.Image:
    """The RAW at `path` as oriented 8-bit RGB whose long side is at least `longest_side`
    (when the picture has that many pixels): the embedded preview when it is at least
    `max(PREVIEW_MIN_SIDE, longest_side)` long, else a half-size development.

    RawUnreadable when LibRaw cannot read the file; the decode gate's DecodeTooLarge and
    DecodeBusy pass through."""
    kind = raw_kind(path) or "RAW"
    try:
        with rawpy.imread(str(path)) as raw:
            orientation = _EXIF_FROM_FLIP.get(raw.sizes.flip, 1)
            preview = _preview(raw, max(PREVIEW_MIN_SIDE, longest_side))
            if preview is not None:
                return _decode_preview(preview, longest_side, orientation)
            return oriented(_develop_half_size(raw, longest_side), orientation)
    except RAW_ERRORS as exc:
        raise RawUnreadable(_reason(kind, exc)) from None


def _preview(raw: rawpy.RawPy, min_side: int) -> Image.Image | None:
    """The embedded preview, opened (not decoded), when it is at least `min_side` long."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        assert isinstance(thumb.data, bytes)
        image: Image.Image = Image.open(io.BytesIO(thumb.data))
        if image.format != "JPEG":
            return None
    else:
        image = Image.fromarray(np.ascontiguousarray(thumb.data))
    return image if max(image.size) >= min_side else None


def _decode_preview(preview: Image.Image, longest_side: int, orientation: int) -> Image.Image:
    if preview.format != "JPEG":  # a bitmap preview is decoded already
        factor = reduce_factor(preview.size, longest_side)
        return reduced_rgb(preview, factor, orientation)
    assert isinstance(preview, ImageFile.ImageFile)
    with decoded(preview, longest_side) as factor:
        return reduced_rgb(preview, factor, orientation)


def _develop_half_size(raw: rawpy.RawPy, longest_side: int) -> Image.Image:
    sizes = raw.sizes
    out_pixels = -(-sizes.width // 2) * -(-sizes.height // 2)
    cost = sizes.raw_width * sizes.raw_height * 2 + out_pixels * _HALF_SIZE_BYTES_PER_PIXEL
    with decode_gate().admit(cost):
        rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8, user_flip=0)
        developed = Image.fromarray(rgb)
        factor = reduce_factor(developed.size, longest_side)
        return developed.reduce(factor) if factor > 1 else developed


def _reason(kind: str, exc: BaseException) -> str:
    first = exc.args[0] if exc.args else ""
    text = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
    detail = text.strip() or type(exc).__name__
    if isinstance(exc, rawpy.LibRawFileUnsupportedError):
        return f"unsupported {kind} file (LibRaw cannot read this camera's format)"
    return f"damaged {kind} file ({detail[:150]})"
