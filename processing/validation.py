"""Decide from its content whether an uploaded file is an image we can process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from processing.metadata_extraction import ImageMetadata, extract_metadata

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


class InvalidImage(Exception):
    """The file is not an image we accept; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class InspectedImage:
    format: str
    mime_type: str
    extension: str
    metadata: ImageMetadata


def inspect_image_file(path: Path, max_pixels: int) -> InspectedImage:
    """Sniff, bound and fully decode `path`; raise InvalidImage with a reason otherwise."""
    try:
        with Image.open(path) as img:
            fmt = img.format or ""
            if fmt not in EXTENSIONS:
                raise InvalidImage(f"unsupported image format {fmt or 'unknown'!r}")
            width, height = img.size
            if width < 1 or height < 1:
                raise InvalidImage("image has no pixels")
            if width * height > max_pixels:
                raise InvalidImage(
                    f"image has more pixels than the limit of {max_pixels} ({width}x{height})"
                )
            metadata = extract_metadata(img)
            img.draft("RGB", (VERIFY_DRAFT_SIDE, VERIFY_DRAFT_SIDE))
            img.load()
    except InvalidImage:
        raise
    except UnidentifiedImageError:
        raise InvalidImage("not an image (the content is not a recognised image format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            f"image has more pixels than the limit of {max_pixels} (decompression bomb)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise InvalidImage(f"image could not be decoded ({_short(exc, path)})") from None
    return InspectedImage(
        format=fmt,
        mime_type=MIME_OVERRIDES.get(fmt) or Image.MIME.get(fmt, "application/octet-stream"),
        extension=EXTENSIONS[fmt],
        metadata=metadata,
    )


def _short(exc: BaseException, path: Path) -> str:
    # Never echo a server path back to the client.
    text = str(exc).replace(str(path), path.name).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
