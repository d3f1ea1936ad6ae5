"""Small DNG files with the structure cameras and converters write, made with tifffile.

IFD0 holds a small RGB thumbnail and the camera tags; its SubIFDs hold the raw CFA image
(14-bit values in 16-bit samples, an RGGB Bayer pattern) and, optionally, a JPEG preview. The
Exif IFD (capture time with sub-seconds and offset, exposure, lens, body serial) is appended
after tifffile has written the file, since tifffile writes no Exif IFD of its own.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from tests.factories import gradient_image

# TIFF field types.
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _SRATIONAL = 1, 2, 3, 4, 5, 10
_EXIF_IFD = 34665
# tifffile refuses to write tag 34665 itself: an unknown tag that sorts just after it is
# written as a placeholder and renumbered once the Exif IFD is appended.
_PLACEHOLDER = 34666
_JPEG = 7
WHITE_LEVEL = 2**14 - 1  # 14-bit sensor
BLACK_LEVEL = 512


@dataclass(frozen=True)
class DngSpec:
    size: tuple[int, int] = (600, 400)  # the CFA image, width x height (even)
    preview_size: tuple[int, int] | None = (1200, 800)  # the JPEG preview; None: none
    thumbnail_size: tuple[int, int] = (256, 171)
    orientation: int = 1
    make: str = "Testmaker"
    model: str = "Raw Body X1"
    serial: str = "SN-4242"
    shot_at: str = "2024:05:06 07:08:09"
    subsec: str = "25"
    offset: str = "+02:00"
    iso: int = 400
    exposure: tuple[int, int] = (1, 250)
    f_number: tuple[int, int] = (28, 10)
    focal_length: tuple[int, int] = (50, 1)
    lens: str = "Test 50mm F1.8"
    seed: int = 0
    preview_seed: int | None = None  # a preview showing another picture (None: the same)
    preview_orientation: int | None = None  # an EXIF orientation in the preview JPEG itself


_FLIPS = (None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM)


def scene(size: tuple[int, int], seed: int) -> Image.Image:
    """The picture every part of the file shows (the CFA data samples it); seeds 1 apart
    give pictures of opposite layout, told apart by their grey levels alone."""
    picture = gradient_image(size, seed=seed)
    flip = _FLIPS[seed % len(_FLIPS)]
    return picture if flip is None else picture.transpose(flip)


def dng_bytes(spec: DngSpec | None = None) -> bytes:
    """A DNG as bytes (see the module docstring)."""
    spec = spec or DngSpec()
    picture = scene(spec.size, spec.seed)
    buffer = io.BytesIO()
    with _pre_encoded_jpeg(), tifffile.TiffWriter(buffer) as tif:
        tif.write(
            np.asarray(picture.resize(spec.thumbnail_size)),
            photometric="rgb",
            subfiletype=1,
            subifds=1 if spec.preview_size is None else 2,
            metadata=None,
            extratags=_ifd0_tags(spec),
        )
        tif.write(
            _cfa(picture),
            photometric=32803,
            subfiletype=0,
            metadata=None,
            extratags=_cfa_tags(),
        )
        if spec.preview_size is not None:
            shown = picture if spec.preview_seed is None else scene(spec.size, spec.preview_seed)
            preview = shown.resize(spec.preview_size)
            encoded = io.BytesIO()
            exif = Image.Exif()
            if spec.preview_orientation is not None:
                exif[274] = spec.preview_orientation
            preview.save(encoded, "JPEG", quality=90, subsampling=0, exif=exif.tobytes())
            tif.write(
                iter([encoded.getvalue()]),
                shape=(spec.preview_size[1], spec.preview_size[0], 3),
                dtype=np.uint8,
                photometric="ycbcr",
                subsampling=(1, 1),
                compression=_JPEG,
                rowsperstrip=spec.preview_size[1],
                subfiletype=1,
                metadata=None,
            )
    return _with_exif_ifd(buffer.getvalue(), spec)


@contextmanager
def _pre_encoded_jpeg() -> Iterator[None]:
    """Let tifffile take JPEG strips we encoded (with Pillow) without imagecodecs: it looks
    the encoder up before it sees that the strips come already encoded, and never calls it."""
    codecs = tifffile.TIFF.COMPRESSORS._codecs
    if _JPEG in codecs:
        yield
        return

    def never_called(data: bytes, **_: object) -> bytes:
        raise AssertionError("the JPEG strip is written as encoded")

    codecs[_JPEG] = never_called
    try:
        yield
    finally:
        codecs.pop(_JPEG, None)


def write_dng(path: Path, spec: DngSpec | None = None) -> Path:
    path.write_bytes(dng_bytes(spec))
    return path


def _cfa(picture: Image.Image) -> np.ndarray:
    """RGGB mosaic of `picture` scaled to 14-bit values above the black level."""
    rgb = np.asarray(picture, dtype=np.float64) / 255.0
    cfa = np.empty(rgb.shape[:2], dtype=np.float64)
    cfa[0::2, 0::2] = rgb[0::2, 0::2, 0]
    cfa[0::2, 1::2] = rgb[0::2, 1::2, 1]
    cfa[1::2, 0::2] = rgb[1::2, 0::2, 1]
    cfa[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return (BLACK_LEVEL + cfa * (WHITE_LEVEL - BLACK_LEVEL)).astype(np.uint16)


def _ascii(tag: int, text: str) -> tuple[int, int, int, str, bool]:
    return (tag, _ASCII, 0, text, True)


def _ifd0_tags(spec: DngSpec) -> list[tuple[int, int, int, object, bool]]:
    # XYZ (D65) -> linear sRGB: the "camera" records sRGB primaries.
    xyz_to_camera = (32406, -15372, -4986, -9689, 18758, 415, 557, -2040, 10570)
    color_matrix = tuple(v for value in xyz_to_camera for v in (value, 10000))
    return [
        _ascii(271, spec.make),
        _ascii(272, spec.model),
        (274, _SHORT, 1, spec.orientation, True),
        _ascii(306, spec.shot_at),
        (50706, _BYTE, 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, _BYTE, 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        _ascii(50708, f"{spec.make} {spec.model}"),  # UniqueCameraModel
        (50721, _SRATIONAL, 9, color_matrix, True),  # ColorMatrix1
        (50778, _SHORT, 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, _RATIONAL, 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
        _ascii(50735, spec.serial),  # CameraSerialNumber
        (_PLACEHOLDER, _LONG, 1, 0, True),  # becomes ExifIFD in _with_exif_ifd
    ]


def _cfa_tags() -> list[tuple[int, int, int, object, bool]]:
    return [
        (33421, _SHORT, 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, _BYTE, 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50710, _BYTE, 3, (0, 1, 2), True),  # CFAPlaneColor
        (50711, _SHORT, 1, 1, True),  # CFALayout: rectangular
        (50714, _SHORT, 1, BLACK_LEVEL, True),  # BlackLevel
        (50717, _SHORT, 1, WHITE_LEVEL, True),  # WhiteLevel
    ]


def _exif_entries(spec: DngSpec) -> list[tuple[int, int, bytes]]:
    def text(value: str) -> bytes:
        return value.encode() + b"\0"

    def ratio(value: tuple[int, int]) -> bytes:
        return struct.pack("<II", *value)

    return [
        (0x829A, _RATIONAL, ratio(spec.exposure)),  # ExposureTime
        (0x829D, _RATIONAL, ratio(spec.f_number)),  # FNumber
        (0x8827, _SHORT, struct.pack("<H", spec.iso)),  # ISOSpeedRatings
        (0x9003, _ASCII, text(spec.shot_at)),  # DateTimeOriginal
        (0x9011, _ASCII, text(spec.offset)),  # OffsetTimeOriginal
        (0x920A, _RATIONAL, ratio(spec.focal_length)),  # FocalLength
        (0x9291, _ASCII, text(spec.subsec)),  # SubSecTimeOriginal
        (0xA431, _ASCII, text(spec.serial)),  # BodySerialNumber
        (0xA434, _ASCII, text(spec.lens)),  # LensModel
    ]


def _with_exif_ifd(data: bytes, spec: DngSpec) -> bytes:
    """`data` with a little-endian Exif IFD appended and IFD0's ExifIFD tag pointing at it."""
    assert data[:2] == b"II", "tifffile writes little-endian by default"
    start = len(data) + (len(data) % 2)
    entries = _exif_entries(spec)
    values_at = start + 2 + 12 * len(entries) + 4
    table, values = b"", b""
    sizes = {_BYTE: 1, _ASCII: 1, _SHORT: 2, _LONG: 4, _RATIONAL: 8, _SRATIONAL: 8}
    for tag, kind, payload in entries:
        count = len(payload) // sizes[kind]
        if len(payload) <= 4:
            table += struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0")
        else:
            offset = values_at + len(values)
            table += struct.pack("<HHII", tag, kind, count, offset)
            values += payload + b"\0" * (len(payload) % 2)
    ifd = struct.pack("<H", len(entries)) + table + struct.pack("<I", 0) + values
    out = bytearray(data.ljust(start, b"\0") + ifd)
    _point_exif_tag(out, start)
    return bytes(out)


def _point_exif_tag(out: bytearray, exif_at: int) -> None:
    (ifd0,) = struct.unpack_from("<I", out, 4)
    (count,) = struct.unpack_from("<H", out, ifd0)
    for index in range(count):
        entry = ifd0 + 2 + 12 * index
        tag, kind, _ = struct.unpack_from("<HHI", out, entry)
        if tag == _PLACEHOLDER:
            struct.pack_into("<HHII", out, entry, _EXIF_IFD, _LONG, 1, exif_at)
            return
    raise AssertionError("IFD0 has no placeholder for the ExifIFD tag")
