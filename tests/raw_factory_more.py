"""Small RAF, CR3, ORF and RW2 files with the container structure their cameras write, a
real body's Make/Model that LibRaw knows, a small sensor image and a large JPEG preview
(tests/raw_factory.py makes DNG, NEF, CR2, ARW and PEF; `camera_raw_bytes` here makes any).

They follow LibRaw's parsers (src/metadata/identify.cpp, fuji.cpp, cr3_parser.cpp, tiff.cpp,
olympus.cpp, canon.cpp; src/decoders/crx.cpp, generic.cpp, decoders_dcraw.cpp) and ExifTool's
tag tables, with the stripped real files in tests/data/exiftool as the layout model. Every
part shows `tests.raw_factory.scene(size, seed)` (the preview may show another seed).

- RAF (Fujifilm): the "FUJIFILMCCD-RAW" header points at the preview JPEG (its APP1 Exif,
  with Fujifilm's maker note, is where the metadata lives), at the big-endian CFA header
  records (RawImageFullSize, RawImageSize, WB_GRGBLevels, BlackLevel) and at the CFA
  section: a little TIFF whose 0xF000 IFD gives the size, bit depth and offset of 14-bit
  RGGB samples in 16-bit little-endian words (an uncompressed RAF).
- CR3 (Canon, ISO-BMFF): 'ftyp' with the 'crx ' brand; in 'moov', Canon's 'uuid' box (CNCV,
  CMT1 IFD0, CMT2 Exif IFD, CMT3 maker note with ColorData, THMB 160x120 JPEG), a track
  holding the full-size JPEG and a CRAW track whose CMP1 header describes a 14-bit RGGB
  sensor; the preview 'uuid' box (PRVW, at most 1620x1080); 'mdat' holds both samples. The
  sensor data is CRX-coded (Canon's codec; LibRaw's decoder gives back the exact samples),
  in its simplest form: no wavelet levels, every sample coded on its own.
- ORF (Olympus): an "IIRO" TIFF; IFD0 the uncompressed 12-bit CFA, packed as Olympus' are;
  the Olympus maker note (offsets from its own start) holds the preview JPEG and the valid
  bits and black levels.
- RW2 (Panasonic): an "IIU" TIFF; IFD0 holds Panasonic's sensor tags, the JpgFromRaw preview
  and the 14-bit samples in RawFormat 5 blocks.
"""

from __future__ import annotations

import functools
import io
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests import raw_factory
from tests.raw_factory import (
    BLACK_LEVEL,
    WHITE_LEVEL,
    Camera,
    DngSpec,
    _camera_tags,
    _cfa,
    _exif,
    scene,
)
from tests.tiff_writer import (
    LONG,
    Block,
    Ifd,
    Tag,
    ascii,
    exif_ifd,
    long,
    maker_note,
    short,
    strips,
    tiff_bytes,
    undefined,
)

# A real body per format, as its files name it (LibRaw's camera tables know them).
MORE_CAMERAS = {
    "RAF": Camera("FUJIFILM", "GFX 50S", "<"),
    "CR3": Camera("Canon", "Canon EOS R6", "<"),
    "ORF": Camera("OLYMPUS IMAGING CORP.", "E-M10", "<"),
    "RW2": Camera("Panasonic", "DC-GH5S", "<"),
}
# Every camera RAW the factories make (DNG aside).
CAMERAS = raw_factory.CAMERAS | MORE_CAMERAS
# RW2 rows are whole 16-byte blocks of 9 samples: 612 wide.
_SIZES = {"RW2": (612, 408)}


def camera_spec(kind: str, **changes: Any) -> DngSpec:
    """A spec for a `kind` RAW of a real body LibRaw knows (see CAMERAS)."""
    if kind not in MORE_CAMERAS:
        return raw_factory.camera_spec(kind, **changes)
    camera = MORE_CAMERAS[kind]
    spec = DngSpec(make=camera.make, model=camera.model, serial="4242")
    return replace(spec, **({"size": _SIZES.get(kind, spec.size)} | changes))


def camera_raw_bytes(kind: str, spec: DngSpec | None = None) -> bytes:
    """A `kind` RAW of CAMERAS as bytes."""
    if kind not in MORE_CAMERAS:
        return raw_factory.camera_raw_bytes(kind, spec)
    return _made(kind, spec or camera_spec(kind))


def write_camera_raw(path: Path, kind: str, spec: DngSpec | None = None) -> Path:
    path.write_bytes(camera_raw_bytes(kind, spec))
    return path


def any_raw_bytes(kind: str, **changes: Any) -> bytes:
    """A DNG (`DngSpec`) or a camera RAW of CAMERAS (`camera_spec`) with `changes` made."""
    if kind not in MORE_CAMERAS:
        return raw_factory.any_raw_bytes(kind, **changes)
    return camera_raw_bytes(kind, camera_spec(kind, **changes))


@functools.lru_cache(maxsize=64)
def _made(kind: str, spec: DngSpec) -> bytes:
    """Made once per spec: CR3's entropy coder runs in Python."""
    return _BUILDERS[kind](spec)


CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_EXIF_HEADER = b"Exif\x00\x00"


def _exif_tiff(spec: DngSpec, note: Tag, serial: bool) -> bytes:
    """A little-endian TIFF of IFD0 (the camera's tags) and its Exif IFD holding the maker
    `note` (and BodySerialNumber when `serial`): a preview JPEG's APP1 payload."""
    return tiff_bytes(Ifd([*_camera_tags(spec), exif_ifd(_exif(spec, note, body_serial=serial))]))


def _jpeg(picture: Image.Image, exif: bytes | None = None) -> bytes:
    """A baseline JPEG whose first segment is the APP1 Exif (no JFIF APP0), as cameras
    write their previews: LibRaw reads a RAF preview's Exif at a fixed 12 bytes in."""
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90, subsampling=0)
    data = buffer.getvalue()
    assert data[:4] == b"\xff\xd8\xff\xe0"  # SOI, then Pillow's JFIF APP0: dropped
    rest = data[4 + struct.unpack(">H", data[4:6])[0] :]
    if exif is None:
        return b"\xff\xd8" + rest
    app1 = _EXIF_HEADER + exif
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + rest


def _preview(spec: DngSpec, size: tuple[int, int] | None) -> Image.Image:
    shown = scene(spec.size, spec.seed if spec.preview_seed is None else spec.preview_seed)
    return shown.resize(size or spec.thumbnail_size)


# --- RAF -------------------------------------------------------------------------------

_RAF_FORMAT = b"0201"  # the header's format version, then the camera ID (ExifTool: RAF)
_RAF_VERSION = b"0100"
_RAF_HEADER = 84  # the directory of offsets starts here
_RAF_DIRECTORY = 12 * 4  # JPEG, CFA header, CFA (offset, length) and reserved words


def _own_offsets_note(header: bytes, ifd: Ifd) -> bytes:
    """A maker note whose 12-byte `header` is followed by a little-endian IFD whose offsets
    count from the note's start (Fujifilm's, Olympus'): laid out as a TIFF whose header has
    the same length (the first IFD at 12), then that header replaced."""
    assert len(header) == 12
    data = tiff_bytes(ifd, "<", magic=0, header_extra=bytes(4))
    assert struct.unpack_from("<I", data, 4)[0] == len(header)
    return header + data[len(header) :]


def _fuji_maker_note(serial: str) -> bytes:
    """Fujifilm's maker note: "FUJIFILM", the IFD's offset (12), Version and
    InternalSerialNumber."""
    ifd = Ifd([undefined(0x0000, b"0130"), ascii(0x0010, serial)])
    return _own_offsets_note(b"FUJIFILM" + struct.pack("<I", 12), ifd)


def _raf(spec: DngSpec) -> bytes:
    width, height = spec.size
    picture = scene(spec.size, spec.seed)
    exif = _exif_tiff(spec, undefined(0x927C, _fuji_maker_note(spec.serial)), serial=False)
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
    # The CFA section: a little-endian TIFF whose IFD0 points (0xF000) at Fujifilm's raw IFD:
    # full width, height, bits a sample, where the samples are and how many bytes.
    raw_ifd = Ifd(
        [
            long(0xF001, width),
            long(0xF002, height),
            long(0xF003, 14),
            Tag(0xF007, LONG, Block(samples)),
            long(0xF008, len(samples)),
        ]
    )
    cfa = tiff_bytes(Ifd([Tag(0xF000, LONG, raw_ifd)]))
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


def _crx_sample(cfa: np.ndarray) -> tuple[bytes, int]:
    """A CRX picture of the RGGB samples `cfa` and the size of its header: one tile, four
    planes (one per Bayer site), one sub-band each (no wavelet levels), each plane coded
    losslessly as LibRaw's crxDecodeTopLine/crxDecodeLine read it back."""
    planes = [_crx_plane(cfa[row::2, col::2]) for row in (0, 1) for col in (0, 1)]
    header = struct.pack(">HHIHH", 0xFF01, 8, sum(map(len, planes)), 0, 0)  # tile 0
    for number, plane in enumerate(planes):
        # The plane (0x08: read with the previous line as reference), its one sub-band.
        header += struct.pack(">HHIB3x", 0xFF02, 8, len(plane), number << 4 | 0x08)
        header += struct.pack(">HHII", 0xFF03, 8, len(plane), 0)
    return header + b"".join(planes), len(header)


_CRX_ESCAPE = 41  # this many leading zeros: the code follows in 21 bits


def _crx_plane(samples: np.ndarray) -> bytes:
    """One plane in CRX's line coding: each sample is predicted from its left neighbour (top
    line) or the median predictor of left, above, above-left (other lines); the error is an
    adaptive Golomb-Rice code. Where the decoder would look for a run (flat neighbours), a
    0 bit says "no run": every sample is coded on its own."""
    values = samples.astype(np.int64) - (1 << _CRX_BITS - 1)  # CRX codes around the median
    height, width = values.shape
    # Each line as the decoder keeps it: [pad, values..., last + 1]; the pad is the first
    # value of the line above (0 on the top line).
    lines = np.empty((height, width + 2), dtype=np.int64)
    lines[:, 1:-1] = values
    lines[:, -1] = values[:, -1] + 1
    lines[0, 0] = 0
    lines[1:, 0] = values[:-1, 0]
    left = lines[:, :-2]
    predicted = np.empty_like(values)
    flagged = np.zeros(values.shape, dtype=bool)  # a "no run" bit precedes the code
    # What the decoder adds to a code to choose the next k (-1: nothing, the code alone).
    k_hint = np.full_like(values, -1)
    # Top line: the left neighbour, or 0 after a "no run" bit where the left one is 0.
    flagged[0, :-1] = left[0, :-1] == 0
    predicted[0] = left[0]
    above_left, above, above_right = lines[:-1, :-2], lines[:-1, 1:-1], lines[:-1, 2:]
    current_left = left[1:]
    delta = above - above_left
    swap = delta < 0
    index = ((above_left < current_left) ^ swap) * 2 + ((current_left < above) ^ swap)
    median = np.where(index < 2, current_left + delta, np.where(index == 2, current_left, above))
    flat = (current_left == above) & (current_left == above_right)
    flat[:, -1] = False  # the last sample of a line is always median-predicted
    predicted[1:] = np.where(flat, above, median)
    flagged[1:] = flat
    k_hint[1:, :-1] = np.abs(2 * (above_right - above))[:, :-1]
    error = values - predicted
    codes = np.where(error >= 0, 2 * error, -2 * error - 1)
    return _crx_bits(codes.ravel().tolist(), flagged.ravel().tolist(), k_hint.ravel().tolist())


def _crx_bits(codes: list[int], flagged: list[bool], hints: list[int]) -> bytes:
    bits: list[str] = []
    k = 0
    for code, flag, hint in zip(codes, flagged, hints, strict=True):
        if flag:
            bits.append("0")
        quotient = code >> k
        if quotient >= _CRX_ESCAPE:
            bits.append("0" * _CRX_ESCAPE + "1" + format(code, "021b"))
        else:
            bits.append("0" * quotient + "1" + (format(code & (1 << k) - 1, f"0{k}b") if k else ""))
        chosen = code if hint < 0 else (code + hint) >> 1
        k = min(k - (chosen < (1 << k >> 1)) + ((chosen >> k) > 2) + ((chosen >> k) > 5), 15)
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 32)
    return int(stream, 2).to_bytes(len(stream) // 8, "big") if stream else b""


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


# Canon's ColorData (maker-note tag 0x4001) as the EOS R5/R6 write it: 3656 shorts, the
# white balance as shot at 0x55 and the black and white levels at 0x326 (LibRaw's
# ColorDataVer 10, ExifTool's ColorData10).
_COLOR_DATA_SHORTS = 3656
_COLOR_DATA_SUB_VERSION = 33
_AS_SHOT_WB, _CHANNEL_BLACK, _WHITE_LEVELS = 0x55, 0x326, 0x32A


def _canon_maker_note() -> bytes:
    """CMT3: a little TIFF whose IFD is Canon's maker note, here its ColorData."""
    shorts = [0] * _COLOR_DATA_SHORTS
    shorts[0] = _COLOR_DATA_SUB_VERSION
    shorts[_AS_SHOT_WB : _AS_SHOT_WB + 4] = [1024] * 4  # RGGB levels: neutral
    shorts[_CHANNEL_BLACK : _CHANNEL_BLACK + 4] = [BLACK_LEVEL] * 4
    shorts[_WHITE_LEVELS : _WHITE_LEVELS + 2] = [WHITE_LEVEL] * 2  # normal, specular
    return tiff_bytes(Ifd([short(0x4001, *shorts)]))


_CANON_NOTE_IN_CMT3 = undefined(0x927C, b"")  # left out of CMT2


_PREVIEW_UUID = bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16")
_PRVW_MAX = (1620, 1080)


def _prvw(picture: Image.Image) -> bytes:
    """The top-level preview 'uuid' box: 8 bytes, then PRVW (its size and the JPEG's)."""
    picture = picture.copy()
    picture.thumbnail(_PRVW_MAX)
    jpeg = _jpeg(picture)
    prvw = _box(b"PRVW", struct.pack(">IHHHHI", 0, 1, *picture.size, 1, len(jpeg)) + jpeg)
    return _box(b"uuid", _PREVIEW_UUID + struct.pack(">II", 0, 1) + prvw)


def _thmb(picture: Image.Image) -> bytes:
    jpeg = _jpeg(picture)
    return _box(b"THMB", struct.pack(">4xHHIHH", *picture.size, len(jpeg), 1, 0) + jpeg)


def _cr3(spec: DngSpec) -> bytes:
    width, height = spec.size
    preview_size = spec.preview_size or spec.thumbnail_size
    preview = _jpeg(_preview(spec, preview_size))
    sample, header_size = _crx_sample(_cfa(scene(spec.size, spec.seed)))
    # CMT1 is IFD0 (its size: where LibRaw takes a CR3's orientation from), CMT2 the Exif
    # IFD (the maker note is CMT3), each a TIFF of its own.
    cmt1 = tiff_bytes(Ifd([*_camera_tags(spec), long(256, width), long(257, height)]))
    exif = _exif(spec, _CANON_NOTE_IN_CMT3, body_serial=True)
    cmt2 = tiff_bytes(Ifd([tag for tag in exif.tags if tag is not _CANON_NOTE_IN_CMT3]))
    canon = CANON_UUID + _box(b"CNCV", b"CanonCR3_001/00.09.00")
    canon += _box(b"CMT1", cmt1) + _box(b"CMT2", cmt2)
    canon += _box(b"CMT3", _canon_maker_note())
    canon += _thmb(_preview(spec, (160, 120)))
    ftyp = _box(b"ftyp", b"crx " + struct.pack(">I", 1) + b"crx isom")

    def moov(mdat_at: int) -> bytes:
        jpeg_at = mdat_at + 8
        tracks = _track(preview_size, _box(b"JPEG", b""), jpeg_at, len(preview))
        tracks += _track(
            spec.size, _cmp1(spec.size, header_size), jpeg_at + len(preview), len(sample)
        )
        return _box(b"moov", _box(b"uuid", canon) + tracks)

    prvw = _prvw(_preview(spec, preview_size))
    mdat_at = len(ftyp) + len(moov(0)) + len(prvw)
    return ftyp + moov(mdat_at) + prvw + _box(b"mdat", preview + sample)


# --- ORF and RW2 (TIFF containers with their own magic) ---------------------------------


_OLYMPUS_NOTE = b"OLYMPUS\0II\x03\x00"  # Olympus' second maker-note layout, little-endian
_ORF_MAGIC = 0x4F52  # "IIRO"
_ORF_BITS = 12


def _olympus_maker_note(preview: bytes | None) -> bytes:
    """Olympus' maker note: its header, then an IFD whose offsets count from the note's start:
    CameraSettings (0x2020: the preview JPEG's place) and ImageProcessing (0x2040: the raw
    data's valid bits and black levels), the preview JPEG stored inside the note."""
    settings = Ifd([long(0x0100, 0)])  # PreviewImageValid: no
    if preview is not None:
        settings = Ifd(
            [
                long(0x0100, 1),
                Tag(0x0101, LONG, Block(preview)),  # PreviewImageStart
                long(0x0102, len(preview)),  # PreviewImageLength
            ]
        )
    processing = Ifd(
        [
            short(0x0600, *[BLACK_LEVEL >> 14 - _ORF_BITS] * 4),  # BlackLevel2 (RGGB)
            short(0x0611, _ORF_BITS, _ORF_BITS),  # ValidBits
        ]
    )
    note = Ifd(
        [
            undefined(0x0000, b"0100"),  # MakerNoteVersion
            Tag(0x2020, LONG, settings),
            Tag(0x2040, LONG, processing),
        ]
    )
    return _own_offsets_note(_OLYMPUS_NOTE, note)


def _packed_12_bit(samples: np.ndarray) -> bytes:
    """12-bit samples as Olympus' uncompressed ORFs keep them (LibRaw's packed_load_raw with
    load_flags 24): a most-significant-bit-first stream cut into 32-bit little-endian words."""
    values = samples.astype(np.uint16).ravel()
    pairs = values.reshape(-1, 2).astype(np.uint32)
    three = np.empty((pairs.shape[0], 3), dtype=np.uint8)  # two 12-bit values in 3 bytes
    three[:, 0] = pairs[:, 0] >> 4
    three[:, 1] = (pairs[:, 0] & 0xF) << 4 | pairs[:, 1] >> 8
    three[:, 2] = pairs[:, 1] & 0xFF
    stream = three.tobytes()
    assert len(stream) % 4 == 0
    return np.frombuffer(stream, dtype=">u4").astype("<u4").tobytes()


def _orf(spec: DngSpec) -> bytes:
    width, height = spec.size
    samples = _cfa(scene(spec.size, spec.seed)) >> 14 - _ORF_BITS
    data = _packed_12_bit(samples)
    preview = _jpeg(_preview(spec, spec.preview_size)) if spec.preview_size else None
    exif = _exif(spec, undefined(0x927C, _olympus_maker_note(preview)), body_serial=True)
    ifd0 = Ifd(
        [
            long(254, 0),  # NewSubfileType: the main image
            long(256, width),
            long(257, height),
            short(258, _ORF_BITS),
            short(259, 1),  # uncompressed
            short(262, 32803),  # CFA
            *_camera_tags(spec),
            *strips(data),
            short(277, 1),
            long(278, height),
            exif_ifd(exif),
        ]
    )
    return tiff_bytes(ifd0, "<", magic=_ORF_MAGIC)


_RW2_MAGIC = 0x55  # "IIU"
# Panasonic's maker note: its signature, then an IFD at file offsets (here its version).
_PANASONIC_NOTE = maker_note(b"Panasonic\0\0\0", Ifd([undefined(0x0001, b"0130")]))
# The 16 bytes after a RW2's header (the first IFD at 24), as in every Panasonic RW2.
_RW2_HEADER = bytes.fromhex("88e774d8f8251d4d947a6e77822b5d6a")
_RW2_BITS = 14
_RW2_PER_BLOCK = 9  # 14-bit samples per 16-byte block (RawFormat 5)
_PANA_ROTATE = 0x2008  # LibRaw reads each 16 KiB chunk from this offset on, then wraps


def _panasonic_packed(samples: np.ndarray) -> bytes:
    """14-bit samples in Panasonic's RawFormat 5 (DC-GH5S; LibRaw's panasonic_load_raw):
    each 16-byte block holds 9 samples, least-significant bits first; the stream is cut in
    16 KiB chunks, each stored rotated as LibRaw reads it back (0x2008 bytes on)."""
    height, width = samples.shape
    assert width % _RW2_PER_BLOCK == 0, "a row is a whole number of blocks"
    groups = samples.astype(np.uint64).reshape(-1, _RW2_PER_BLOCK)
    low = np.zeros(len(groups), dtype=np.uint64)  # bits 0..63 of each 128-bit block
    high = np.zeros(len(groups), dtype=np.uint64)
    for index in range(_RW2_PER_BLOCK):
        shift = index * _RW2_BITS
        value = groups[:, index]
        if shift < 64:
            low |= value << np.uint64(shift)
            if shift + _RW2_BITS > 64:
                high |= value >> np.uint64(64 - shift)
        else:
            high |= value << np.uint64(shift - 64)
    blocks = np.stack([low, high], axis=1).astype("<u8").tobytes()
    chunk = 0x4000
    stream = blocks.ljust(-(-len(blocks) // chunk) * chunk, b"\0")
    return b"".join(
        stream[at + _PANA_ROTATE : at + chunk] + stream[at : at + _PANA_ROTATE]
        for at in range(0, len(stream), chunk)
    )


def _rw2(spec: DngSpec) -> bytes:
    width, height = spec.size
    data = _panasonic_packed(_cfa(scene(spec.size, spec.seed)))
    exif = _exif_tiff(spec, _PANASONIC_NOTE, serial=True)
    previews = [] if spec.preview_size is None else [_jpeg(_preview(spec, spec.preview_size), exif)]
    level = 1 << 10  # WB levels: equal (neutral)
    ifd0 = Ifd(
        [
            undefined(0x0001, b"0350"),  # PanasonicRawVersion
            short(0x0002, width),  # SensorWidth
            short(0x0003, height),  # SensorHeight
            short(0x0004, 0),  # SensorTopBorder
            short(0x0005, 0),  # SensorLeftBorder
            short(0x0006, height),  # SensorBottomBorder
            short(0x0007, width),  # SensorRightBorder
            short(0x0009, 1),  # CFAPattern: RGGB
            short(0x000A, _RW2_BITS),  # BitsPerSample
            short(0x000B, 34316),  # Compression: Panasonic RAW
            short(0x000E, WHITE_LEVEL),  # LinearityLimitRed
            short(0x000F, WHITE_LEVEL),  # LinearityLimitGreen
            short(0x0010, WHITE_LEVEL),  # LinearityLimitBlue
            short(0x0017, spec.iso),  # ISO
            short(0x001C, BLACK_LEVEL),  # BlackLevelRed
            short(0x001D, BLACK_LEVEL),  # BlackLevelGreen
            short(0x001E, BLACK_LEVEL),  # BlackLevelBlue
            short(0x0024, level),  # WBRedLevel
            short(0x0025, level),  # WBGreenLevel
            short(0x0026, level),  # WBBlueLevel
            short(0x002D, 5),  # RawFormat
            *(undefined(0x002E, jpeg) for jpeg in previews),  # JpgFromRaw
            *_camera_tags(spec),
            short(277, 1),
            long(278, height),
            long(279, len(data)),  # StripByteCounts
            Tag(0x0118, LONG, Block(data)),  # RawDataOffset
            exif_ifd(_exif(spec, _PANASONIC_NOTE, body_serial=True)),
        ]
    )
    return tiff_bytes(ifd0, "<", magic=_RW2_MAGIC, header_extra=_RW2_HEADER)


_BUILDERS = {"RAF": _raf, "CR3": _cr3, "ORF": _orf, "RW2": _rw2}
