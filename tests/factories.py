"""Real image files for tests, written by Pillow."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, TiffImagePlugin

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
