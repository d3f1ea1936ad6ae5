"""Small RAF, CR3, ORF and RW2 files with the container structure their cameras write, a
real body's Make/Model that LibRaw knows, a small sensor image and a large JPEG preview.

They follow LibRaw's parsers (src/metadata/identify.cpp, fuji.cpp, cr3_parser.cpp, tiff.cpp,
olympus.cpp; src/decoders/crx.cpp) and ExifTool's tag tables, with the stripped real files in
tests/data/exiftool as the layout model. Every part shows `tests.raw_factory.scene(size, seed)`
(the preview may show another seed), so a test can tell which part a decode came from.

- RAF (Fujifilm): the "FUJIFILMCCD-RAW" header points at the preview JPEG (its APP1 Exif,
  with Fujifilm's maker note, is where the metadata lives), at the big-endian CFA header
  records (RawImageFullSize, RawImageSize, WB_GRGBLevels, BlackLevel) and at the CFA
  section: a little TIFF whose 0xF000 IFD gives the size, bit depth and offset of 14-bit
  RGGB samples in 16-bit little-endian words (an uncompressed RAF).
- CR3 (Canon, ISO-BMFF): 'ftyp' with the 'crx ' brand; in 'moov', Canon's 'uuid' box (CNCV,
  CMT1 IFD0, CMT2 Exif IFD, THMB 160x120 JPEG), a track holding the full-size JPEG and a CRAW
  track whose CMP1 header describes a 14-bit RGGB sensor in CRX coding; 'mdat' holds both
  samples. The CRX sample is a valid CRX header (one tile, four planes, no wavelet levels)
  whose sub-bands are empty: LibRaw unpacks it as a black sensor image. Canon's CRX entropy
  coder has no encoder we can ship, so the CR3 decode path tested is the preview's (the one a
  real CR3 always takes: it carries a full-size JPEG), not the half-size development.
"""

from __future__ import annotations

import io
import struct
from dataclasses import replace
from typing import Any

from PIL import Image

from tests.factories import build_exif, rational
from tests.raw_factory import BLACK_LEVEL, DngSpec, _cfa, scene

# A real body per format, as its files name it (LibRaw's camera tables know them).
CAMERAS = {
    "RAF": ("FUJIFILM", "GFX 50S"),
    "CR3": ("Canon", "Canon EOS R6"),
}
CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_EXIF_HEADER = b"Exif\x00\x00"


def camera_spec(kind: str, **changes: Any) -> DngSpec:
    """The synthetic picture and metadata of `tests.raw_factory.DngSpec` with `kind`'s body."""
    make, model = CAMERAS[kind]
    return replace(DngSpec(make=make, model=model), **changes)


def raw_bytes(kind: str, spec: DngSpec | None = None) -> bytes:
    """A `kind` file ("RAF", "CR3") as bytes."""
    spec = spec or camera_spec(kind)
    return _BUILDERS[kind](spec)


def _exif(spec: DngSpec, extra_ifd0: dict[int, object] | None = None) -> Image.Exif:
    """IFD0 and Exif IFD as cameras write them (Pillow's TIFF writer, little-endian)."""
    ifd0: dict[int, object] = {
        271: spec.make,
        272: spec.model,
        274: spec.orientation,
        306: spec.shot_at,
        **(extra_ifd0 or {}),
    }
    exif_ifd: dict[int, object] = {
        0x829A: rational(spec.exposure),
        0x829D: rational(spec.f_number),
        0x8827: spec.iso,
        0x9003: spec.shot_at,
        0x9011: spec.offset,
        0x9291: spec.subsec,
        0x920A: rational(spec.focal_length),
        0xA434: spec.lens,
    }
    exif = build_exif(ifd0, exif_ifd)
    exif.endian = "<"
    return exif


def _tiff(exif: Image.Exif) -> bytes:
    return exif.tobytes().removeprefix(_EXIF_HEADER)


def _jpeg(picture: Image.Image, exif: Image.Exif | None = None) -> bytes:
    """A baseline JPEG whose first segment is the APP1 Exif (no JFIF APP0), as cameras
    write their previews: LibRaw reads a RAF preview's Exif at a fixed 12 bytes in."""
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90, subsampling=0)
    data = buffer.getvalue()
    assert data[:4] == b"\xff\xd8\xff\xe0"  # SOI, then Pillow's JFIF APP0: dropped
    rest = data[4 + struct.unpack(">H", data[4:6])[0] :]
    if exif is None:
        return b"\xff\xd8" + rest
    app1 = _EXIF_HEADER + _tiff(exif)
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + rest


def _preview(spec: DngSpec, size: tuple[int, int] | None) -> Image.Image:
    shown = scene(spec.size, spec.seed if spec.preview_seed is None else spec.preview_seed)
    return shown.resize(size or spec.thumbnail_size)


# --- RAF -------------------------------------------------------------------------------

_RAF_FORMAT = b"0201"  # the header's format version, then the camera ID (ExifTool: RAF)
_RAF_VERSION = b"0100"
_RAF_HEADER = 84  # the directory of offsets starts here
_RAF_DIRECTORY = 12 * 4  # JPEG, CFA header, CFA (offset, length) and reserved words


def _fuji_maker_note(serial: str) -> bytes:
    """Fujifilm's maker note: "FUJIFILM", the IFD's offset from the note's start (12), a
    little-endian IFD (Version, InternalSerialNumber) whose offsets count from the note."""
    text = serial.encode() + b"\0"
    entries = 2
    values_at = 12 + 2 + 12 * entries + 4
    ifd = struct.pack("<H", entries)
    ifd += struct.pack("<HHI4s", 0x0000, 7, 4, b"0130")
    ifd += struct.pack("<HHII", 0x0010, 2, len(text), values_at)
    return b"FUJIFILM" + struct.pack("<I", 12) + ifd + struct.pack("<I", 0) + text


def _raf(spec: DngSpec) -> bytes:
    width, height = spec.size
    picture = scene(spec.size, spec.seed)
    exif = _exif(spec)
    exif.get_ifd(0x8769)[0x927C] = _fuji_maker_note(spec.serial)
    jpeg = _jpeg(_preview(spec, spec.preview_size), exif)
    records = [
        (0x0100, struct.pack(">HH", height, width)),  # RawImageFullSize
        (0x0121, struct.pack(">HH", height, width)),  # RawImageSize
        (0x2FF0, struct.pack(">4H", 512, 512, 512, 512)),  # WB_GRGBLevels: neutral
        (0x4000, struct.pack(">4H", *[BLACK_LEVEL] * 4)),  # BlackLevel
    ]
    cfa_header = struct.pack(">I", len(records))
    cfa_header += b"".join(struct.pack(">HH", tag, len(v)) + v for tag, v in records)
    samples = _cfa(picture).astype("<u2").tobytes()
    # The CFA section: a little-endian TIFF whose IFD0 points (0xF000) at Fujifilm's raw IFD.
    raw_ifd_at = 8 + 2 + 12 + 4
    raw_tags = [(0xF001, width), (0xF002, height), (0xF003, 14), (0xF007, 0), (0xF008, 0)]
    data_at = raw_ifd_at + 2 + 12 * len(raw_tags) + 4
    raw_tags[3:] = [(0xF007, data_at), (0xF008, len(samples))]
    cfa = b"II*\x00" + struct.pack("<I", 8)
    cfa += struct.pack("<HHHII", 1, 0xF000, 13, 1, raw_ifd_at) + struct.pack("<I", 0)
    cfa += struct.pack("<H", len(raw_tags))
    cfa += b"".join(struct.pack("<HHII", tag, 4, 1, value) for tag, value in raw_tags)
    cfa += struct.pack("<I", 0) + samples
    header = b"FUJIFILMCCD-RAW " + _RAF_FORMAT + b"FF383501"
    header += spec.model.encode().ljust(32, b"\0") + _RAF_VERSION
    header = header.ljust(_RAF_HEADER, b"\0")
    jpeg_at = _RAF_HEADER + _RAF_DIRECTORY
    header_at = _aligned(jpeg_at + len(jpeg))
    cfa_at = _aligned(header_at + len(cfa_header))
    directory = struct.pack(
        ">6I", jpeg_at, len(jpeg), header_at, len(cfa_header), cfa_at, len(cfa)
    ).ljust(_RAF_DIRECTORY, b"\0")
    out = bytearray(header + directory + jpeg)
    out += bytes(header_at - len(out)) + cfa_header
    out += bytes(cfa_at - len(out)) + cfa
    return bytes(out)


def _aligned(offset: int, to: int = 16) -> int:
    return offset + (-offset) % to


# --- CR3 -------------------------------------------------------------------------------


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, payload: bytes) -> bytes:
    """An ISO-BMFF FullBox: version 0, no flags."""
    return _box(kind, bytes(4) + payload)


def _craw_entry(size: tuple[int, int], child: bytes) -> bytes:
    """The 'CRAW' sample entry: a VisualSampleEntry (78 bytes) and 4 bytes of Canon's."""
    visual = bytes(6) + struct.pack(">H", 1) + bytes(16)
    visual += struct.pack(">HHII", *size, 0x480000, 0x480000) + bytes(4)
    visual += struct.pack(">H", 1) + bytes(32) + struct.pack(">Hh", 24, -1)
    return _box(b"CRAW", visual + bytes(4) + child)


def _track(size: tuple[int, int], child: bytes, offset: int, length: int) -> bytes:
    stbl = _full_box(b"stsd", struct.pack(">I", 1) + _craw_entry(size, child))
    stbl += _full_box(b"stsc", struct.pack(">4I", 1, 1, 1, 1))
    stbl += _full_box(b"stsz", struct.pack(">II", length, 1))
    stbl += _full_box(b"co64", struct.pack(">IQ", 1, offset))
    hdlr = _full_box(b"hdlr", bytes(4) + b"vide" + bytes(12))
    return _box(b"trak", _box(b"mdia", hdlr + _box(b"minf", _box(b"stbl", stbl))))


_CRX_BITS = 14
_CRX_PLANES = 4  # R, G1, G2, B: one plane per Bayer site
_CRX_RGGB = 0  # CMP1's CFA layout code


def _crx_sample() -> bytes:
    """A CRX picture header (tile 0, four planes, one sub-band each: no wavelet levels)
    whose sub-bands are empty (LibRaw fills such a plane with zeros)."""
    header = struct.pack(">HHIHH", 0xFF01, 8, 0, 0, 0)  # tile 0, 0 bytes of data
    for plane in range(_CRX_PLANES):
        header += struct.pack(">HHIB3x", 0xFF02, 8, 0, plane << 4)  # plane, 0 bytes
        header += struct.pack(">HHII", 0xFF03, 8, 0, 0)  # sub-band 0, 0 bytes
    return header


def _cmp1(size: tuple[int, int], header_size: int) -> bytes:
    """CMP1: CRX version 1.0, the sensor's and the tile's size, bits, planes and layout."""
    width, height = size
    payload = struct.pack(
        ">IHHIIIIBBBBI",
        0,
        0x100,
        0,
        width,
        height,
        width,
        height,
        _CRX_BITS,
        _CRX_PLANES << 4 | _CRX_RGGB,
        0,  # encoding type 0, 0 wavelet levels
        0,  # one tile column and row
        header_size,
    )
    return _box(b"CMP1", payload.ljust(60, b"\0"))


def _thmb(picture: Image.Image) -> bytes:
    jpeg = _jpeg(picture)
    return _box(b"THMB", struct.pack(">4xHHIHH", *picture.size, len(jpeg), 1, 0) + jpeg)


def _cr3(spec: DngSpec) -> bytes:
    width, height = spec.size
    preview_size = spec.preview_size or spec.thumbnail_size
    preview = _jpeg(_preview(spec, preview_size))
    sample = _crx_sample()
    ifd0 = _exif(spec, {256: width, 257: height})  # LibRaw's CR3 orientation: this IFD's
    exif_ifd = Image.Exif()
    exif_ifd.endian = "<"
    exif_ifd.update({**ifd0.get_ifd(0x8769), 0xA431: spec.serial})
    canon = CANON_UUID + _box(b"CNCV", b"CanonCR3_001/00.09.00")
    canon += _box(b"CMT1", _tiff(_without_exif_pointer(ifd0)))
    canon += _box(b"CMT2", _tiff(exif_ifd))
    canon += _thmb(_preview(spec, (160, 120)))
    ftyp = _box(b"ftyp", b"crx " + struct.pack(">I", 1) + b"crx isom")

    def moov(mdat_at: int) -> bytes:
        jpeg_at = mdat_at + 8
        tracks = _track(preview_size, _box(b"JPEG", b""), jpeg_at, len(preview))
        tracks += _track(
            spec.size, _cmp1(spec.size, len(sample)), jpeg_at + len(preview), len(sample)
        )
        return _box(b"moov", _box(b"uuid", canon) + tracks)

    mdat_at = len(ftyp) + len(moov(0))
    return ftyp + moov(mdat_at) + _box(b"mdat", preview + sample)


def _without_exif_pointer(exif: Image.Exif) -> Image.Exif:
    """IFD0 alone (CR3 keeps the Exif IFD in its own box, CMT2)."""
    ifd0 = Image.Exif()
    ifd0.endian = "<"
    ifd0.update({tag: value for tag, value in exif.items() if tag != 0x8769})
    return ifd0


_BUILDERS = {"RAF": _raf, "CR3": _cr3}
