"""Tell a camera RAW or a video from other files by their content, never by their name.

A RAW is recognised by what its container says: TIFF-based RAWs (DNG, CR2, NEF, ARW, PEF,
...) carry a DNGVersion tag, Canon's "CR" header mark, or a colour-filter-array image in one of
their IFDs; ORF and RW2 have TIFF headers of their own; CR3 is ISO-BMFF with the 'crx ' brand;
RAF starts with "FUJIFILMCCD-RAW". A TIFF that only carries a camera's Make is a RAW when LibRaw
(see `processing.raw`) also opens it as one: that is checked there, not here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# RAW kind -> (extension the original is stored under, MIME type).
RAW_FORMATS = {
    "DNG": (".dng", "image/x-adobe-dng"),
    "CR2": (".cr2", "image/x-canon-cr2"),
    "CR3": (".cr3", "image/x-canon-cr3"),
    "NEF": (".nef", "image/x-nikon-nef"),
    "ARW": (".arw", "image/x-sony-arw"),
    "PEF": (".pef", "image/x-pentax-pef"),
    "ORF": (".orf", "image/x-olympus-orf"),
    "RW2": (".rw2", "image/x-panasonic-rw2"),
    "RAF": (".raf", "image/x-fuji-raf"),
    "SRW": (".srw", "image/x-samsung-srw"),
    "KDC": (".kdc", "image/x-kodak-kdc"),
    "RAW": (".raw", "image/x-dcraw"),  # another TIFF-based RAW LibRaw reads (IIQ, 3FR...)
}
# Make (upper case, prefix) -> kind, for TIFF-based RAWs without a mark of their own.
_MAKE_KINDS = (
    ("NIKON", "NEF"),
    ("SONY", "ARW"),
    ("PENTAX", "PEF"),
    ("RICOH", "PEF"),
    ("SAMSUNG", "SRW"),
    ("CANON", "CR2"),
    ("EASTMAN KODAK", "KDC"),
    ("KODAK", "KDC"),
)
# TIFF headers of RAW formats that are TIFF inside but not by their magic number.
_RAW_MAGIC = {
    b"IIRO": "ORF",
    b"IIRS": "ORF",
    b"MMOR": "ORF",
    b"IIU\x00": "RW2",
}
_TIFF_MAGIC = {b"II*\x00": "<", b"MM\x00*": ">"}
# ISO-BMFF brands of still images (HEIF, AVIF and their sequences): anything else is a movie.
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"mif2", b"msf1", b"avif", b"avis"}
_IMAGE_BRANDS |= {b"hevc", b"hevx", b"jpeg", b"avci", b"avcs"}
_CR3_BRAND = b"crx "
# DNGVersion, PhotometricInterpretation, Make, SubIFDs, and the photometric values of raw data.
_DNG_VERSION, _PHOTOMETRIC, _MAKE, _SUB_IFDS = 50706, 262, 271, 330
_RAW_PHOTOMETRIC = {32803, 34892}  # CFA, LinearRaw
_MAX_IFDS = 16  # IFDs visited at most: a loop or a hostile chain stops here
_MAX_ENTRIES = 4096
_TS_PACKET = 188
_HEAD_BYTES = 256


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What a file's content says it is: a RAW of `raw_kind`, a video, or neither."""

    raw_kind: str | None = None
    maybe_raw: bool = False  # a TIFF with a camera's Make: LibRaw decides
    video: str | None = None  # the container's name, for the message


def sniff_file(path: Path) -> Sniffed:
    """Look at `path`'s headers (a few hundred bytes, a few IFDs); never decodes pixels."""
    with path.open("rb") as file:
        head = file.read(_HEAD_BYTES)
        if head[:4] in _RAW_MAGIC:
            return Sniffed(raw_kind=_RAW_MAGIC[head[:4]])
        if head.startswith(b"FUJIFILMCCD-RAW"):
            return Sniffed(raw_kind="RAF")
        if head[4:8] == b"ftyp":
            return _sniff_bmff(head)
        order = _TIFF_MAGIC.get(head[:4])
        if order is not None:
            return _sniff_tiff(file, head, order)
    return Sniffed(video=_video_container(head))


def _sniff_bmff(head: bytes) -> Sniffed:
    (size,) = struct.unpack(">I", head[:4])
    end = min(len(head), size if size >= 16 else 16)
    brands = {head[offset : offset + 4] for offset in range(16, end - 3, 4)} | {head[8:12]}
    if head[8:12] == _CR3_BRAND:
        return Sniffed(raw_kind="CR3")
    if brands & _IMAGE_BRANDS:
        return Sniffed()
    return Sniffed(video="MP4/QuickTime")


def _video_container(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "MPEG"
    if head[:3] == b"FLV":
        return "FLV"
    if head[:16] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c":
        return "WMV/ASF"
    if len(head) > _TS_PACKET and head[0] == head[_TS_PACKET] == 0x47:
        return "MPEG-TS"  # 188-byte packets, each opening with the sync byte 0x47
    return None


def _sniff_tiff(file: BinaryIO, head: bytes, order: str) -> Sniffed:
    if head[8:10] == b"CR":
        return Sniffed(raw_kind="CR2")
    tags = _walk_ifds(file, order, struct.unpack(order + "I", head[4:8])[0])
    make = tags.make.upper()
    if tags.dng:
        return Sniffed(raw_kind="DNG")
    if tags.raw_data:
        kind = next((kind for prefix, kind in _MAKE_KINDS if make.startswith(prefix)), "RAW")
        return Sniffed(raw_kind=kind)
    return Sniffed(maybe_raw=bool(make))


@dataclass(slots=True)
class _TiffTags:
    dng: bool = False
    raw_data: bool = False
    make: str = ""


def _walk_ifds(file: BinaryIO, order: str, first: int) -> _TiffTags:
    """Visit IFD0, the IFDs chained after it and their SubIFDs, breadth first; a damaged
    or cut IFD ends the walk with what was found before it."""
    found = _TiffTags()
    pending: list[int] = [first]
    seen: set[int] = set()
    while pending and len(seen) < _MAX_IFDS:
        offset = pending.pop(0)
        if offset in seen or offset < 8:
            continue
        seen.add(offset)
        try:
            _read_ifd(file, order, offset, found, pending)
        except (struct.error, OSError, ValueError):
            break
    return found


def _read_ifd(
    file: BinaryIO, order: str, offset: int, found: _TiffTags, pending: list[int]
) -> None:
    file.seek(offset)
    (count,) = struct.unpack(order + "H", file.read(2))
    table = file.read(12 * min(count, _MAX_ENTRIES))
    for index in range(len(table) // 12):
        tag, kind, n, value = struct.unpack_from(order + "HHI4s", table, 12 * index)
        _read_entry(file, order, found, pending, (tag, kind, n, value))
    (following,) = struct.unpack(order + "I", file.read(4).ljust(4, b"\0"))
    if following:
        pending.append(following)


def _read_entry(
    file: BinaryIO,
    order: str,
    found: _TiffTags,
    pending: list[int],
    entry: tuple[int, int, int, bytes],
) -> None:
    tag, kind, count, value = entry
    if tag == _DNG_VERSION:
        found.dng = True
    elif tag == _PHOTOMETRIC and kind == 3:
        found.raw_data |= struct.unpack(order + "H", value[:2])[0] in _RAW_PHOTOMETRIC
    elif tag == _MAKE and kind == 2 and not found.make:
        text = value[:count] if count <= 4 else _read_at(file, order, value, min(count, 64))
        found.make = text.split(b"\0")[0].decode("latin-1").strip()
    elif tag == _SUB_IFDS and kind in (4, 13):
        raw = value if count == 1 else _read_at(file, order, value, 4 * min(count, 8))
        pending.extend(struct.unpack(f"{order}{len(raw) // 4}I", raw))


def _read_at(file: BinaryIO, order: str, pointer: bytes, size: int) -> bytes:
    (offset,) = struct.unpack(order + "I", pointer)
    here = file.tell()
    file.seek(offset)
    data = file.read(size)
    file.seek(here)
    return data
