"""Small camera RAW files with the structure cameras and converters write, laid out with
tests/tiff_writer.py: DNG here, then NEF, CR2, ARW and PEF (see below).

A DNG's IFD0 holds a small RGB thumbnail, the camera tags and an Exif IFD (capture time with
sub-seconds and offset, exposure, lens, body serial); its SubIFDs hold the raw CFA image
(14-bit values in 16-bit samples, an RGGB Bayer pattern) and, optionally, a JPEG preview.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests import tiff_writer as tw
from tests.factories import gradient_image
from tests.raw_encoding import (
    NIKON_14_BIT_LOSSLESS,
    SONY_CURVE_KNEES,
    Huffman,
    huffman_bits,
    lossless_jpeg,
    sony_arw2,
    two_column_differences,
)

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
    # NEF, PEF: the maker's lossless Huffman coding, ARW: Sony's lossy ARW2 (else 14-bit
    # samples in 16-bit words); CR2 is always a lossless JPEG, DNG always uncompressed.
    compressed: bool = True


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
    images = [tw.Ifd([tw.long(254, 0), *_dng_cfa(spec)])]
    if spec.preview_size is not None:
        images.append(tw.Ifd([tw.long(254, 1), *_dng_preview(spec, spec.preview_size)]))
    ifd0 = [
        tw.long(254, 1),
        *_rgb_thumbnail(spec, "<", spec.thumbnail_size),
        *_camera_tags(spec),
        *_dng_tags(spec),
        tw.sub_ifds(*images),
        tw.exif_ifd(_exif(spec, body_serial=True)),
    ]
    return tw.tiff_bytes(tw.Ifd(ifd0), "<")


def preview_jpeg(spec: DngSpec, size: tuple[int, int]) -> bytes:
    """The camera's JPEG rendering of the picture at `size` (the preview, the thumbnail)."""
    shown = scene(spec.size, spec.seed if spec.preview_seed is None else spec.preview_seed)
    encoded = io.BytesIO()
    exif = Image.Exif()
    if spec.preview_orientation is not None:
        exif[274] = spec.preview_orientation
    shown.resize(size).save(encoded, "JPEG", quality=90, subsampling=0, exif=exif.tobytes())
    return encoded.getvalue()


def write_dng(path: Path, spec: DngSpec | None = None) -> Path:
    path.write_bytes(dng_bytes(spec))
    return path


def _cfa(picture: Image.Image, white: int = WHITE_LEVEL) -> np.ndarray:
    """RGGB mosaic of `picture` scaled to 14-bit values between the black level and `white`."""
    rgb = np.asarray(picture, dtype=np.float64) / 255.0
    cfa = np.empty(rgb.shape[:2], dtype=np.float64)
    cfa[0::2, 0::2] = rgb[0::2, 0::2, 0]
    cfa[0::2, 1::2] = rgb[0::2, 1::2, 1]
    cfa[1::2, 0::2] = rgb[1::2, 0::2, 1]
    cfa[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return (BLACK_LEVEL + cfa * (white - BLACK_LEVEL)).astype(np.uint16)


def _dng_tags(spec: DngSpec) -> list[tw.Tag]:
    # XYZ (D65) -> linear sRGB: the "camera" records sRGB primaries.
    xyz_to_camera = (32406, -15372, -4986, -9689, 18758, 415, 557, -2040, 10570)
    return [
        tw.byte(50706, 1, 4, 0, 0),  # DNGVersion
        tw.byte(50707, 1, 1, 0, 0),  # DNGBackwardVersion
        tw.ascii(50708, f"{spec.make} {spec.model}"),  # UniqueCameraModel
        tw.srational(50721, *((value, 10000) for value in xyz_to_camera)),  # ColorMatrix1
        tw.short(50778, 21),  # CalibrationIlluminant1: D65
        tw.rational(50728, (1, 1), (1, 1), (1, 1)),  # AsShotNeutral
        tw.ascii(50735, spec.serial),  # CameraSerialNumber
    ]


def _dng_cfa(spec: DngSpec) -> list[tw.Tag]:
    """The CFA image: 14-bit RGGB samples above the black level in 16-bit words."""
    data = _cfa(scene(spec.size, spec.seed)).astype("<u2").tobytes()
    return [
        *_cfa_image(spec, "<", data=data, bits=16),
        tw.byte(50710, 0, 1, 2),  # CFAPlaneColor
        tw.short(50711, 1),  # CFALayout: rectangular
        tw.short(50714, BLACK_LEVEL),  # BlackLevel
        tw.short(50717, WHITE_LEVEL),  # WhiteLevel
    ]


def _dng_preview(spec: DngSpec, size: tuple[int, int]) -> list[tw.Tag]:
    """A JPEG preview as DNG keeps one: a YCbCr image of one JPEG-compressed strip."""
    return [
        *tw.strip_image(size, (8, 8, 8), 7, 6, preview_jpeg(spec, size)),
        tw.short(530, 1, 1),  # YCbCrSubSampling: the JPEG's own (4:4:4)
    ]


# Camera RAWs that are TIFF containers (NEF, CR2, ARW, PEF), laid out as their makers do
# (ExifTool's Exif.pm notes on where each keeps its images), written with tests.tiff_writer:
# - NEF: IFD0 a small RGB thumbnail and the camera tags; SubIFD0 the full JPEG (JpgFromRaw),
#   SubIFD1 the raw CFA; big-endian; Nikon's maker note is a TIFF of its own (serial 0x001D,
#   the NEF compression's predictions 0x0096).
# - CR2: the "CR" mark and the raw IFD's offset after the header; IFD0 the full JPEG (in a
#   strip), IFD1 a JPEG thumbnail, IFD2 a small RGB image, IFD3 the raw CFA; Canon's maker note
#   is a bare IFD (SerialNumber 0x000C, an int32u).
# - ARW: IFD0 the preview JPEG (JPEGInterchangeFormat) and a SubIFD with the raw CFA (rows a
#   multiple of 32 wide: the default sensor is 608 x 400); IFD1 a
#   JPEG thumbnail; Sony's maker note starts "SONY DSC ".
# - PEF: IFD0 the raw CFA itself; IFD1 a JPEG thumbnail; IFD2 the full JPEG (JpgFromRaw);
#   big-endian; Pentax's maker note starts "AOC\0" and the byte order.
# The raw data are 14-bit samples coded as each maker does (tests/raw_encoding.py): Nikon's
# lossless Huffman code (NEFCompression 3), Pentax's (its table in maker note 0x0220), Canon's
# lossless JPEG; Sony's lossy ARW2 (8 bits a sample, a tone curve); or, with
# `compressed=False`, in 16-bit words of the file's byte order (these bodies' uncompressed
# setting). The body serial is where each
# maker keeps it.


@dataclass(frozen=True)
class Camera:
    make: str
    model: str
    order: str  # the byte order the maker writes: "<" II, ">" MM
    size: tuple[int, int] = (600, 400)  # the sensor's, by default


CAMERAS = {
    "NEF": Camera("NIKON CORPORATION", "NIKON D700", ">"),
    "CR2": Camera("Canon", "Canon EOS 5D Mark II", "<"),
    # Sony's rows are a multiple of 32 wide: ARW2 codes 32 columns at a time.
    "ARW": Camera("SONY", "ILCE-7M3", "<", (608, 400)),
    "PEF": Camera("PENTAX", "PENTAX K-5", ">"),
}
THUMBNAIL_SIZE = (160, 120)
CR2_RGB_SIZE = (362, 234)  # IFD2's small RGB image, the EOS 5D Mark II's size
# A PEF carries its own Huffman table: any whose codes are at most 12 bits long does.
PENTAX_TABLE = NIKON_14_BIT_LOSSLESS
CAMERA_WHITE = 14000


def camera_spec(kind: str, **changes: object) -> DngSpec:
    """A spec for a `kind` RAW of a real body LibRaw knows (see CAMERAS)."""
    camera = CAMERAS[kind]
    fields: dict[str, object] = {"make": camera.make, "model": camera.model, "serial": "4242"}
    fields["size"] = camera.size
    return DngSpec(**(fields | changes))  # type: ignore[arg-type]


def camera_raw_bytes(kind: str, spec: DngSpec | None = None) -> bytes:
    """A `kind` RAW (NEF, CR2, ARW or PEF) as bytes (see above)."""
    spec = spec or camera_spec(kind)
    order = CAMERAS[kind].order
    if kind == "CR2":
        return _cr2_bytes(spec)
    first = {"NEF": _nef_ifd0, "ARW": _arw_ifd0, "PEF": _pef_ifd0}[kind](spec, order)
    return tw.tiff_bytes(first, order)


def any_raw_bytes(kind: str, **changes: object) -> bytes:
    """A DNG (`DngSpec`) or a camera RAW of CAMERAS (`camera_spec`) with `changes` made."""
    if kind == "DNG":
        return dng_bytes(DngSpec(**changes))  # type: ignore[arg-type]
    return camera_raw_bytes(kind, camera_spec(kind, **changes))


def write_camera_raw(path: Path, kind: str, spec: DngSpec | None = None) -> Path:
    path.write_bytes(camera_raw_bytes(kind, spec))
    return path


def _nef_ifd0(spec: DngSpec, order: str) -> tw.Ifd:
    note_tags = [tw.undefined(0x0001, b"0210"), tw.ascii(0x001D, spec.serial)]
    raw = _cfa_image(spec, order)
    if spec.compressed:
        # NEFCompression 3 (lossless); 0x0096: version 0x46 0x30 ("lossless"), the four first
        # predictions (0) and no curve.
        note_tags += [tw.short(0x0093, 3), tw.undefined(0x0096, b"\x46\x30" + bytes(10))]
        samples = two_column_differences(camera_cfa(spec))
        raw = _cfa_image(spec, order, 34713, huffman_bits(samples, NIKON_14_BIT_LOSSLESS))
    note = tw.tiff_bytes(tw.Ifd(note_tags), ">")
    images = [tw.Ifd([tw.long(254, 0), *raw])]
    if spec.preview_size is not None:
        preview = preview_jpeg(spec, spec.preview_size)
        images.insert(0, tw.Ifd([tw.long(254, 1), tw.short(259, 6), *tw.jpeg_block(preview)]))
    return tw.Ifd(
        [
            tw.long(254, 1),
            *_rgb_thumbnail(spec, order),
            *_camera_tags(spec),
            tw.sub_ifds(*images),
            tw.exif_ifd(_exif(spec, tw.undefined(0x927C, b"Nikon\0\x02\x10\0\0" + note))),
        ]
    )


def _cr2_bytes(spec: DngSpec) -> bytes:
    raw = tw.Ifd(_cr2_raw(spec))
    small = tw.Ifd([*_rgb_thumbnail(spec, "<", CR2_RGB_SIZE)], raw)
    thumbnail = tw.Ifd([tw.short(259, 6), *tw.jpeg_block(preview_jpeg(spec, THUMBNAIL_SIZE))])
    thumbnail.next = small
    note = tw.Ifd([tw.long(0x000C, int(spec.serial)), tw.long(0x0010, 0x80000218)])
    full = spec.preview_size or THUMBNAIL_SIZE  # IFD0 always holds a JPEG; a small one here
    ifd0 = tw.Ifd(
        [
            tw.long(256, full[0]),
            tw.long(257, full[1]),
            tw.short(258, 8, 8, 8),
            tw.short(259, 6),
            *tw.strips(preview_jpeg(spec, full)),
            *_camera_tags(spec),
            tw.exif_ifd(_exif(spec, tw.maker_note(b"", note))),
        ],
        thumbnail,
    )
    # The header says "CR", version 2.0, then where the raw IFD is (known once laid out).
    laid_out = tw.tiff_file(ifd0, "<", header_extra=b"CR\x02\x00\0\0\0\0")
    data = bytearray(laid_out.data)
    struct.pack_into("<I", data, 12, laid_out.offset(raw))
    return bytes(data)


def _cr2_raw(spec: DngSpec) -> list[tw.Tag]:
    """Canon's raw IFD: no size tags (LibRaw reads them from the JPEG frame), the CFA as a
    lossless JPEG of two components cut in two vertical slices (CR2Slice: one slice this
    wide, then the last one), each slice's rows one after the other."""
    cfa = camera_cfa(spec)
    height, width = cfa.shape
    first = width // 2 + 4
    stream = np.concatenate([cfa[:, :first].ravel(), cfa[:, first:].ravel()])
    jpeg = lossless_jpeg(stream.reshape(height, width), bits=14, components=2)
    return [tw.short(259, 6), *tw.strips(jpeg), tw.short(0xC640, 1, first, width - first)]


def _arw_ifd0(spec: DngSpec, order: str) -> tw.Ifd:
    thumbnail = tw.Ifd([tw.short(259, 6), *tw.jpeg_block(preview_jpeg(spec, THUMBNAIL_SIZE))])
    preview = preview_jpeg(spec, spec.preview_size or THUMBNAIL_SIZE)
    note = tw.Ifd([tw.short(0xB001, 362)])  # SonyModelID: ILCE-7M3
    raw = tw.Ifd([tw.long(254, 0), *_cfa_image(spec, order, compression=32767)])
    if spec.compressed:
        # ARW2: one byte a sample (bits 12 as Sony says), its tone curve's knees in 0x7010.
        knees = tw.short(0x7010, *(4 * knee for knee in SONY_CURVE_KNEES))
        data, _ = sony_arw2(camera_cfa(spec))
        raw = tw.Ifd([tw.long(254, 0), *_cfa_image(spec, order, 32767, data, bits=12), knees])
    return tw.Ifd(
        [
            tw.long(254, 1),
            tw.short(259, 6),
            *tw.jpeg_block(preview),
            *_camera_tags(spec),
            tw.sub_ifds(raw),
            tw.exif_ifd(_exif(spec, tw.maker_note(b"SONY DSC \0\0\0", note), body_serial=True)),
        ],
        thumbnail,
    )


def _pef_ifd0(spec: DngSpec, order: str) -> tw.Ifd:
    thumbnail = tw.Ifd([tw.short(259, 6), *tw.jpeg_block(preview_jpeg(spec, THUMBNAIL_SIZE))])
    if spec.preview_size is not None:
        full = preview_jpeg(spec, spec.preview_size)
        thumbnail.next = tw.Ifd([tw.short(259, 6), *tw.jpeg_block(full)])
    note_tags = [tw.byte(0x0000, 3, 0, 0, 0)]  # PentaxVersion
    raw = _cfa_image(spec, order)
    if spec.compressed:
        note_tags.append(tw.undefined(0x0220, _pentax_table(PENTAX_TABLE, order)))
        samples = two_column_differences(camera_cfa(spec))
        raw = _cfa_image(spec, order, 65535, huffman_bits(samples, PENTAX_TABLE))
    note = tw.Ifd(note_tags)
    return tw.Ifd(
        [
            *raw,
            *_camera_tags(spec),
            tw.exif_ifd(
                _exif(spec, tw.maker_note(b"AOC\0" + order_mark(order), note), body_serial=True)
            ),
        ],
        thumbnail,
    )


def order_mark(order: str) -> bytes:
    return b"II" if order == "<" else b"MM"


def _camera_tags(spec: DngSpec) -> list[tw.Tag]:
    return [
        tw.ascii(271, spec.make),
        tw.ascii(272, spec.model),
        tw.short(274, spec.orientation),
        tw.ascii(306, spec.shot_at),
    ]


def _rgb_thumbnail(
    spec: DngSpec, order: str, size: tuple[int, int] = THUMBNAIL_SIZE
) -> list[tw.Tag]:
    pixels = np.asarray(scene(spec.size, spec.seed).resize(size), dtype=np.uint8)
    return tw.strip_image(size, (8, 8, 8), 1, 2, pixels.tobytes())


def _pentax_table(table: Huffman, order: str) -> bytes:
    """Pentax's Huffman table (maker note 0x0220) as LibRaw reads it: a count (categories
    - 12, modulo 16), 12 bytes, each category's code left-aligned in 12 bits, its length."""
    count = len(table.lengths)
    codes = [
        int(code) << (12 - int(length))
        for code, length in zip(table.codes, table.lengths, strict=True)
    ]
    assert max(table.lengths) <= 12
    head = struct.pack(f"{order}H", (count - 12) % 16) + bytes(12)
    return head + struct.pack(f"{order}{count}H", *codes) + bytes(int(n) for n in table.lengths)


def _cfa_image(
    spec: DngSpec, order: str, compression: int = 1, data: bytes | None = None, bits: int = 14
) -> list[tw.Tag]:
    """The raw CFA image, one strip: 14-bit RGGB values in 16-bit words, or `data` coded
    with `compression`."""
    if data is None:
        data = camera_cfa(spec).astype(f"{order}u2").tobytes()
    return [
        *tw.strip_image(spec.size, (bits,), compression, 32803, data),
        tw.short(33421, 2, 2),  # CFARepeatPatternDim
        tw.byte(33422, 0, 1, 1, 2),  # CFAPattern: RGGB
    ]


def sensor_samples(kind: str, spec: DngSpec) -> np.ndarray:
    """The samples LibRaw must read from a `kind` RAW of `spec`: `camera_cfa`, but for Sony's
    lossy ARW2 code what it keeps of them."""
    if kind == "ARW" and spec.compressed:
        return sony_arw2(camera_cfa(spec))[1]
    return camera_cfa(spec)


def camera_cfa(spec: DngSpec) -> np.ndarray:
    """The 14-bit RGGB samples a camera RAW of `spec` holds."""
    # Exposed below the cameras' saturation (LibRaw clips a 5D Mark II at 15600).
    return _cfa(scene(spec.size, spec.seed), CAMERA_WHITE)


def _exif(spec: DngSpec, maker_note: tw.Tag | None = None, body_serial: bool = False) -> tw.Ifd:
    tags = [
        tw.rational(0x829A, spec.exposure),  # ExposureTime
        tw.rational(0x829D, spec.f_number),  # FNumber
        tw.short(0x8827, spec.iso),  # ISOSpeedRatings
        tw.ascii(0x9003, spec.shot_at),  # DateTimeOriginal
        tw.ascii(0x9011, spec.offset),  # OffsetTimeOriginal
        tw.rational(0x920A, spec.focal_length),  # FocalLength
        tw.ascii(0x9291, spec.subsec),  # SubSecTimeOriginal
        tw.ascii(0xA434, spec.lens),  # LensModel
    ]
    if maker_note is not None:
        tags.append(maker_note)
    if body_serial:
        tags.append(tw.ascii(0xA431, spec.serial))  # BodySerialNumber
    return tw.Ifd(tags)
