"""Real image files for tests, written by Pillow."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, TiffImagePlugin

from database.models import Image as ImageRow


def image_row(tag: str, n: int, model: str | None = None, **columns: Any) -> ImageRow:
    """An image row named `tag` + `n` whose files are never read (a unique hash; a 16-byte
    vector when it has an embedding `model`)."""
    return ImageRow(
        filename=f"{tag}{n}.jpg",
        original_filename=f"{tag}{n}.jpg",
        file_path=f"images/{tag}{n}.jpg",
        image_hash=f"{tag}{n:x}".rjust(64, "0"),
        file_size=1,
        mime_type="image/jpeg",
        embedding_model=model,
        features=None if model is None else b"\0" * 16,
        **columns,
    )


EXIF_IFD = 0x8769
GPS_IFD = 0x8825


def gradient_image(
    size: tuple[int, int] = (64, 48), seed: int = 0, mode: str = "RGB"
) -> Image.Image:
    """A deterministic, textured picture: a gradient plus seeded noise (unique per seed)."""
    width, height = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    base = np.concatenate(
        [np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1))]
        + [np.full((height, width, 1), (seed * 37) % 256, dtype=np.float32)],
        axis=2,
    )
    noisy = base + rng.normal(0, 12, size=(height, width, 3))
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="RGB")
    return img if mode == "RGB" else img.convert(mode)


def build_exif(
    base: dict[int, Any] | None = None,
    exif_ifd: dict[int, Any] | None = None,
    gps_ifd: dict[int, Any] | None = None,
) -> Image.Exif:
    """An `Image.Exif` with the given IFD0, Exif-IFD and GPS-IFD tags."""
    exif = Image.Exif()
    for tag, value in (base or {}).items():
        exif[tag] = value
    if exif_ifd:
        sub = exif.get_ifd(EXIF_IFD)
        sub.update(exif_ifd)
    if gps_ifd:
        gps = exif.get_ifd(GPS_IFD)
        gps.update(gps_ifd)
    return exif


def rational(value: float | tuple[int, int]) -> TiffImagePlugin.IFDRational:
    if isinstance(value, tuple):
        return TiffImagePlugin.IFDRational(*value)
    return TiffImagePlugin.IFDRational(value)


def encode(
    img: Image.Image, fmt: str = "JPEG", exif: Image.Exif | None = None, **params: Any
) -> bytes:
    buffer = io.BytesIO()
    if exif is not None:
        params["exif"] = exif
    img.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg_bytes(
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
    exif: Image.Exif | None = None,
    quality: int = 90,
) -> bytes:
    return encode(gradient_image(size, seed), "JPEG", exif, quality=quality)


def png_bytes(size: tuple[int, int] = (64, 48), seed: int = 0, mode: str = "RGB") -> bytes:
    return encode(gradient_image(size, seed, mode), "PNG")


def tiff_bytes(size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    return encode(gradient_image(size, seed), "TIFF")


REAL_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
)


def real_photo(name: str) -> Image.Image:
    """A real photograph shipped inside scikit-image's wheel (test-only dependency)."""
    import skimage.data

    with Image.open(Path(skimage.data.__file__).parent / name) as photo:
        return photo.convert("RGB")


def burst(
    photo: Image.Image,
    frames: int,
    seed: int,
    size: tuple[int, int] = (320, 240),
    blur: tuple[float, float] = (0.0, 0.8),
) -> list[bytes]:
    """Frames of one burst: small crops and shifts, brightness changes, a little blur, each
    re-encoded as JPEG at its own quality."""
    from PIL import ImageEnhance, ImageFilter

    rng = np.random.default_rng(seed)
    width, height = photo.size
    shots = []
    for _ in range(frames):
        scale = rng.uniform(0.85, 0.95)
        w, h = int(width * scale), int(height * scale)
        left = int(rng.uniform(0, width - w))
        top = int(rng.uniform(0, height - h))
        frame = photo.crop((left, top, left + w, top + h)).resize(size, Image.Resampling.BILINEAR)
        frame = ImageEnhance.Brightness(frame).enhance(rng.uniform(0.9, 1.1))
        frame = frame.filter(ImageFilter.GaussianBlur(rng.uniform(*blur)))
        shots.append(encode(frame, "JPEG", quality=int(rng.integers(75, 95))))
    return shots


# --- Damaged and unusual files (tests/api/test_hostile_input.py) -----------------------------


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """`jpeg` with an APP1 segment (where EXIF lives) holding `payload`, right after SOI."""
    import struct

    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def raw_exif(order: str, entries: list[tuple[int, int, int, int]]) -> bytes:
    """An APP1 EXIF payload with one IFD0 of raw (tag, type, count, value/offset) entries,
    so tests can write what Pillow refuses to: offsets past the end, absurd counts."""
    import struct

    endian = "<" if order == "II" else ">"
    head = order.encode() + struct.pack(f"{endian}HI", 42, 8)
    ifd = struct.pack(f"{endian}H", len(entries))
    for tag, typ, count, value in entries:
        if typ == 3 and count == 1:  # a SHORT sits left-aligned in the 4-byte value field
            ifd += struct.pack(f"{endian}HHIHH", tag, typ, count, value, 0)
        else:
            ifd += struct.pack(f"{endian}HHII", tag, typ, count, value)
    return b"Exif\x00\x00" + head + ifd + struct.pack(f"{endian}I", 0)


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    """One PNG chunk; `crc` overrides the correct checksum."""
    import struct
    import zlib

    checksum = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)


def png_with_bad_crc(png: bytes, kind: bytes) -> bytes:
    """`png` with the checksum of its first `kind` chunk (b"IHDR", b"IDAT") zeroed."""
    import struct

    start = png.index(kind) - 4
    (length,) = struct.unpack(">I", png[start : start + 4])
    crc_at = start + 8 + length
    return png[:crc_at] + b"\x00\x00\x00\x00" + png[crc_at + 4 :]


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims `width` x `height` RGB pixels."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + png_chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int, seed: int = 0) -> bytes:
    """A small JPEG whose frame header (SOF0) is rewritten to claim `width` x `height`."""
    import struct

    data = jpeg_bytes((64, 48), seed)
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def animated_gif_bytes(size: tuple[int, int] = (64, 48), frames: int = 3, seed: int = 0) -> bytes:
    pictures = [gradient_image(size, seed + i).convert("P") for i in range(frames)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, "GIF", save_all=True, append_images=pictures[1:], duration=100, loop=0)
    return buffer.getvalue()


def heic_bytes(size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """A HEIC (HEVC in HEIF) picture, written by pillow-heif."""
    from processing.imaging import register_image_plugins

    register_image_plugins()
    return encode(gradient_image(size, seed), "HEIF", quality=90)


def multipart_body(
    filename: bytes, data: bytes, content_type: bytes = b"image/jpeg"
) -> tuple[bytes, dict[str, str]]:
    """A one-file multipart body whose filename goes on the wire byte for byte (HTTP clients
    escape or re-encode what tests need to send raw), and the headers to post it with."""
    boundary = b"pixal-test-boundary-7d3f"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="files"; filename="' + filename + b'"\r\n'
        b"Content-Type: " + content_type + b"\r\n\r\n" + data + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}


def heic_declaring(width: int, height: int, real: tuple[int, int] = (64, 64)) -> bytes:
    """A small HEIC whose image-size property (`ispe`) claims `width` x `height`. A `real`
    size that is not a multiple of 64 is coded padded and cropped (`clap`): the crop then
    hides the claimed size from Pillow until the decode."""
    import struct

    data = bytearray(heic_bytes(real))
    at = data.index(b"ispe") + 8  # after the box type, version and flags
    data[at : at + 8] = struct.pack(">II", width, height)
    return bytes(data)


# --- Focus, shake and noise made from real photos (the judge's tests) -------------------------

# Where the astronaut's face is (Haar cascade on the 512 px photo), enlarged to the head.
ASTRONAUT_HEAD = (176 - 49, 65 - 49, 176 + 98 + 49, 65 + 98 + 49)


def shallow_focus(img: Image.Image, region: tuple[int, int, int, int], inside: bool) -> Image.Image:
    """`img` with a soft background (inside=True) or a soft subject (inside=False)."""
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).ellipse(region, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(6))
    soft = img.filter(ImageFilter.GaussianBlur(4))
    return Image.composite(img, soft, mask) if inside else Image.composite(soft, img, mask)


def focus_stack(img: Image.Image, frames: int, across: bool = False) -> list[Image.Image]:
    """Frames of a focus stack of `img`: frame k sharp in the k-th of `frames` bands (top to
    bottom, or left to right with `across`), the rest softened as a lens focused elsewhere."""
    width, height = img.size
    soft = img.filter(ImageFilter.GaussianBlur(3))
    stack = []
    for k in range(frames):
        mask = Image.new("L", img.size, 0)
        band = (
            (width * k // frames, 0, width * (k + 1) // frames, height)
            if across
            else (0, height * k // frames, width, height * (k + 1) // frames)
        )
        ImageDraw.Draw(mask).rectangle(band, fill=255)
        feather = mask.filter(ImageFilter.GaussianBlur(min(width, height) / (3 * frames)))
        stack.append(Image.composite(img, soft, feather))
    return stack


def shaken(img: Image.Image, length: int = 9, angle: float = 30.0) -> Image.Image:
    """A straight-line camera shake of `length` pixels."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    centre = ((length - 1) / 2, (length - 1) / 2)
    kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(centre, angle, 1.0), (length, length))
    pixels = cv2.filter2D(np.asarray(img), -1, kernel / kernel.sum())
    return Image.fromarray(pixels)


def with_noise(img: Image.Image, sigma: float, seed: int) -> Image.Image:
    pixels = np.asarray(img, dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0.0, sigma, pixels.shape[:2])[..., None]
    return Image.fromarray(np.clip(pixels + noise + 0.5, 0, 255).astype(np.uint8))


def blank_png(width: int, height: int, bit_depth: int = 16, colour_type: int = 0) -> bytes:
    """A valid PNG of `width` x `height` zero pixels, built with zlib row by row: a few hundred
    KB that decode to hundreds of MB (16000 x 15000 16-bit grey: 467 KB, 458 MB decoded)."""
    import struct
    import zlib

    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" * (1 + -(-width * channels * bit_depth // 8))  # filter byte + samples
    packer = zlib.compressobj(9)
    chunk = row * max(1, (4 << 20) // len(row))  # about 4 MB of rows per call
    whole, rest = divmod(height, len(chunk) // len(row))
    parts = [packer.compress(chunk) for _ in range(whole)]
    idat = b"".join([*parts, packer.compress(row * rest), packer.flush()])
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def sweep(
    img: Image.Image, frames: int, shift: float, across: bool = False, seed: int = 0
) -> list[Image.Image]:
    """A panorama sweep cut from one real photo: `frames` windows of 45% of its width (height
    with `across`), each `shift` of a window on from the one before, drifting up to 3% across,
    turned up to 1.5 degrees, each with its own exposure (within 5%) and sensor noise."""
    rng = np.random.default_rng(seed)
    if across:
        img = img.transpose(Image.Transpose.ROTATE_90)
    width, height = img.size
    window = min(round(width * 0.45), int(width / (1 + shift * (frames - 1))))
    step = round(window * shift)
    room = round(0.06 * height)
    result = []
    for k in range(frames):
        top = int(rng.integers(0, room + 1))
        box = (k * step, top, k * step + window, top + height - room)
        # Turned about the window's centre, drawn from the photo around it: no empty corners.
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        frame = img.rotate(float(rng.uniform(-1.5, 1.5)), Image.Resampling.BILINEAR, center=centre)
        pixels = np.asarray(frame.crop(box), dtype=np.float32) * float(rng.uniform(0.95, 1.05))
        noise = rng.normal(0.0, 3.0, pixels.shape[:2])[..., None]
        frame = Image.fromarray(np.clip(pixels + noise + 0.5, 0, 255).astype(np.uint8))
        result.append(frame.transpose(Image.Transpose.ROTATE_270) if across else frame)
    return result
