"""Decide from its content whether an uploaded file is an image we can process."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from processing.decode_gate import DecodeTooLarge
from processing.imaging import decoded, load_pillow_rgb, open_image, reduced_rgb
from processing.metadata_extraction import ImageMetadata, extract_metadata
from processing.raw import RawUnreadable, load_raw_rgb, raw_kind, read_raw_header
from processing.raw_metadata import extract_raw_metadata
from processing.sniff import sniff_file

# Pillow format -> the extension files of that format are stored under.
EXTENSIONS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "TIFF": ".tif",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "HEIF": ".heic",
    "AVIF": ".avif",
}
# Browsers know an MPO (a JPEG with extra frames) as a JPEG.
MIME_OVERRIDES = {"MPO": "image/jpeg"}
# A decode at this size touches every byte of a JPEG (so truncation shows) at 1/8 scale.
VERIFY_DRAFT_SIDE = 64
# Formats whose decode changes what their metadata says: a JPEG decoded at a draft scale
# reports the smaller size, a TIFF turns its pixels and drops its orientation. Their metadata
# is read first (reading a JPEG's or TIFF's metadata decodes nothing) and the decode made on
# a second open. Other formats are decoded once, then read.
METADATA_BEFORE_DECODE = {"JPEG", "MPO", "TIFF"}
# What decoding a damaged file raises, from Pillow's decoders and its EXIF parser; libheif's
# refusals (its own size limits among them) come through pillow-heif as RuntimeError.
_DECODE_ERRORS = (
    OSError,
    RuntimeError,
    SyntaxError,
    ValueError,
    EOFError,
    MemoryError,
    struct.error,
    TypeError,
    IndexError,
    KeyError,
    ZeroDivisionError,
)
# Leading bytes of the formats we accept, to say "damaged PNG" rather than "not an image".
_SIGNATURES = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF8", "GIF"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (8, b"WEBP", "WebP"),
    (0, b"BM", "BMP"),
    (4, b"ftyp", "HEIF/AVIF"),
)


class InvalidImage(Exception):
    """The file is not an image we accept; the message says why, for the user."""


class NotAPhoto(InvalidImage):
    """The file is another kind of media (a video): refused as an unsupported media type."""


@dataclass(frozen=True, slots=True)
class InspectedImage:
    format: str
    mime_type: str
    extension: str
    metadata: ImageMetadata
    # The check's decode, handed on (with `keep_side`): oriented 8-bit RGB whose longest side
    # is at least `keep_side` (or the original's, when smaller).
    pixels: Image.Image | None = None


def inspect_image_file(path: Path, max_pixels: int, keep_side: int = 0) -> InspectedImage:
    """Sniff, bound and fully decode `path`; raise InvalidImage with a reason otherwise.

    With `keep_side`, the decode is made at that size (a JPEG's draft scale for it) and
    kept in `pixels`, so that the thumbnail, quality judge and model can start from it
    instead of decoding the file again. A camera RAW is recognised by its content and read
    through LibRaw (processing.raw); a video is refused as NotAPhoto. The decode goes through
    the decode gate: DecodeTooLarge (the picture alone would exceed the decode budget) and
    DecodeBusy (no room came free in time) pass through."""
    side = max(keep_side, VERIFY_DRAFT_SIDE)
    sniffed = sniff_file(path)
    if sniffed.video is not None:
        raise NotAPhoto(f"a video, not a photo ({sniffed.video} content)")
    kind = raw_kind(path, sniffed)
    if kind is not None:
        inspected = _guarded(path, max_pixels, lambda: _inspect_raw(path, kind, max_pixels, side))
    else:
        inspected = _guarded(path, max_pixels, lambda: _inspect_pillow(path, max_pixels, side))
    return inspected if keep_side > 0 else replace(inspected, pixels=None)


def _guarded(path: Path, max_pixels: int, inspect: Callable[[], InspectedImage]) -> InspectedImage:
    """Run `inspect`, turning what a damaged or hostile file raises into InvalidImage."""
    try:
        return inspect()
    except (InvalidImage, DecodeTooLarge):
        raise
    except RawUnreadable as exc:
        raise InvalidImage(str(exc)) from None
    except UnidentifiedImageError:
        raise InvalidImage(_unidentified(path)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            f"image has more pixels than the limit of {max_pixels} (decompression bomb)"
        ) from None
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"image could not be decoded ({_short(exc, path)})") from None


def _inspect_raw(path: Path, kind: str, max_pixels: int, side: int) -> InspectedImage:
    """A RAW: LibRaw's size and orientation, its EXIF, and the decode the worker needs (the
    preview at a reduced scale, or a half-size development), which proves it can be made."""
    header = read_raw_header(path, kind)
    _check_size((header.width, header.height), max_pixels)
    metadata = extract_raw_metadata(path, header)
    pixels = load_raw_rgb(path, side)
    return InspectedImage(kind, header.mime_type, header.extension, metadata, pixels)


def _inspect_pillow(path: Path, max_pixels: int, side: int) -> InspectedImage:
    pixels: Image.Image | None = None
    with open_image(path) as img:
        fmt = img.format or ""
        if fmt not in EXTENSIONS:
            raise InvalidImage(f"unsupported image format {fmt or 'unknown'!r}")
        _check_size(img.size, max_pixels)
        mime_type = MIME_OVERRIDES.get(fmt) or img.get_format_mimetype()
        if fmt in METADATA_BEFORE_DECODE:
            metadata = extract_metadata(img)
        else:
            # Decoded first: reading a PNG's EXIF decodes it and hides a failure.
            with decoded(img, side) as factor:
                # Converted (strip by strip, as the worker would): what is accepted can be
                # processed.
                pixels = reduced_rgb(img, factor)
                metadata = extract_metadata(img)
    if fmt in METADATA_BEFORE_DECODE:
        pixels = load_pillow_rgb(path, side)
    return InspectedImage(
        format=fmt,
        mime_type=mime_type or "application/octet-stream",
        extension=EXTENSIONS[fmt],
        metadata=metadata,
        pixels=pixels,
    )


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise InvalidImage("image has no pixels")
    if width * height > max_pixels:
        raise InvalidImage(
            f"image has more pixels than the limit of {max_pixels} ({width}x{height})"
        )


def _unidentified(path: Path) -> str:
    with path.open("rb") as file:
        head = file.read(16)
    for offset, signature, kind in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return f"damaged {kind} file (its header could not be read)"
    return "not an image (the content is not a recognised image format)"


def _short(exc: BaseException, path: Path) -> str:
    # Never echo a server path back to the client.
    text = str(exc)
    for server_path in (str(path.resolve()), str(path)):
        text = text.replace(server_path, path.name)
    for folder in (str(path.resolve().parent), str(path.parent)):
        text = text.replace(folder, "")
    text = text.strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
