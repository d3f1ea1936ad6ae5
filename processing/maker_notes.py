"""The camera body's serial number from a maker note, for files whose Exif IFD has no
BodySerialNumber (grouping and RAW+JPEG pairing key on the body).

Layouts and tag numbers are ExifTool's (Image::ExifTool::MakerNotes, ::Nikon, ::Canon and
::FujiFilm of ExifTool 12.57), checked on ExifTool's own test images (tests/data/exiftool):
- Nikon (type 3): "Nikon\\0", a version, then a complete TIFF whose offsets count from its own
  header; SerialNumber 0x001D, older bodies (D70, D2Hs) 0x00A0.
- Fujifilm: "FUJIFILM", then the little-endian offset of the IFD from the note's start; always
  little-endian, value offsets from the note's start; InternalSerialNumber 0x0010.
- Canon: a bare IFD in the enclosing TIFF's byte order, value offsets from that TIFF's header
  (in a CR3, the CMT3 box is that TIFF); SerialNumber 0x000C (an int32u, printed as ExifTool
  prints it), else InternalSerialNumber 0x0096 (a string; inside SerialInfo for the EOS 5D).
  0x0015 is SerialNumberFormat, not a serial.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL.ExifTags import Base

# Reads `size` bytes at `offset` from a TIFF's header (fewer at its end).
TiffReader = Callable[[int, int], bytes]

_ORDER = {b"II": "<", b"MM": ">"}
_EXIF_IFD = 0x8769
_MAKER_NOTE = 0x927C
_MAKE, _MODEL = 0x010F, 0x0110
_NIKON_SERIALS = (0x001D, 0x00A0)
_FUJI_SERIAL = 0x0010
_CANON_SERIAL, _CANON_INTERNAL_SERIAL = 0x000C, 0x0096
_MAX_ENTRIES = 1024  # more entries than any maker note has: a damaged IFD
_MAX_VALUE = 4096
# What a damaged maker note or a short file can raise; a serial is never worth an error.
_ERRORS = (struct.error, OSError, ValueError, OverflowError)
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


@dataclass(frozen=True, slots=True)
class _Entry:
    """One IFD entry."""

    type: int
    count: int
    field: bytes  # the value itself when it fits in 4 bytes, else its offset

    @property
    def size(self) -> int:
        return _TYPE_SIZES.get(self.type, 1) * self.count


def with_body_serial(
    exif: Mapping[int, Any], serial: Callable[[], str | None]
) -> Mapping[int, Any]:
    """The Exif IFD `exif`, with the maker note's serial (`serial()`) as its BodySerialNumber
    when it has none; a damaged maker note leaves it as it is."""
    present = exif.get(Base.BodySerialNumber)
    if isinstance(present, str) and present.strip("\x00 "):  # some bodies write it blank
        return exif
    try:
        value = serial()
    except _ERRORS:
        return exif
    return {**exif, Base.BodySerialNumber: value} if value else exif


def exif_blob_serial(blob: object) -> str | None:
    """The maker note's serial in an image's Exif blob (Pillow's `info["exif"]`)."""
    if not isinstance(blob, bytes):
        return None
    return body_serial(bytes_reader(blob.removeprefix(b"Exif\x00\x00")))


_Ifd = dict[int, _Entry]


def bytes_reader(data: bytes) -> TiffReader:
    return lambda offset, size: data[offset : offset + size] if offset >= 0 else b""


def file_reader(file: BinaryIO) -> TiffReader:
    def read(offset: int, size: int) -> bytes:
        if offset < 0:
            return b""
        file.seek(offset)
        return file.read(size)

    return read


def body_serial(tiff: TiffReader) -> str | None:
    """The serial in the maker note of the TIFF (a RAW file, a JPEG's Exif) `tiff` reads."""
    order, ifd0 = _first_ifd(tiff)
    exif = ifd0.get(_EXIF_IFD)
    if exif is None:
        return None
    note = _entries(tiff, order, _integer(exif, order)).get(_MAKER_NOTE)
    if note is None or note.size < 12:
        return None
    start = struct.unpack(order + "I", note.field)[0]
    magic = tiff(start, 12)
    if magic.startswith(b"Nikon\x00"):
        return _nikon_serial(_shifted(tiff, start + 10))
    if magic.startswith(b"FUJIFILM"):
        return _fuji_serial(_shifted(tiff, start), struct.unpack("<I", magic[8:12])[0])
    if _string(tiff, order, ifd0.get(_MAKE)).startswith("Canon"):
        model = _string(tiff, order, ifd0.get(_MODEL))
        return _canon_serial(tiff, order, _entries(tiff, order, start), model)
    return None


def canon_note_serial(tiff: TiffReader, model: str) -> str | None:
    """The serial in a TIFF whose first IFD is Canon's maker note (a CR3's CMT3 box)."""
    order, entries = _first_ifd(tiff)
    return _canon_serial(tiff, order, entries, model)


def _canon_serial(tiff: TiffReader, order: str, entries: _Ifd, model: str) -> str | None:
    """The serial in Canon maker-note `entries` of `tiff` (value offsets from its header)."""
    number = entries.get(_CANON_SERIAL)
    if number is not None and number.type == 4 and number.count == 1:
        value = _integer(number, order)
        if "EOS D30" in model:
            return f"{value >> 16:04x}{value & 0xFFFF:05d}"
        return f"{value:06d}" if "EOS-1D" in model else f"{value:010d}"
    internal = entries.get(_CANON_INTERNAL_SERIAL)
    if internal is None:
        return None
    data = _value(tiff, order, internal)
    if "EOS 5D" in model:  # ExifTool's SerialInfo: the string starts at byte 9
        data = data[9:]
    return _text(data.rstrip(b"\xff"))


def _first_ifd(tiff: TiffReader) -> tuple[str, _Ifd]:
    """The byte order and the first IFD's entries of the TIFF `tiff` reads (none if not one)."""
    head = tiff(0, 8)
    order = _ORDER.get(head[:2])
    if order is None or len(head) < 8:
        return "<", {}
    return order, _entries(tiff, order, struct.unpack(order + "I", head[4:])[0])


def _nikon_serial(tiff: TiffReader) -> str | None:
    order, entries = _first_ifd(tiff)
    texts = (_string(tiff, order, entries.get(tag)) for tag in _NIKON_SERIALS)
    return next((text for text in texts if text), None)


def _fuji_serial(note: TiffReader, ifd: int) -> str | None:
    return _string(note, "<", _entries(note, "<", ifd).get(_FUJI_SERIAL)) or None


def _shifted(tiff: TiffReader, start: int) -> TiffReader:
    """A reader whose offset 0 is `start` of `tiff` (a maker note's own base)."""
    return lambda offset, size: tiff(start + offset, size) if offset >= 0 else b""


def _entries(tiff: TiffReader, order: str, ifd: int) -> _Ifd:
    count_bytes = tiff(ifd, 2)
    if len(count_bytes) < 2:
        return {}
    (count,) = struct.unpack(order + "H", count_bytes)
    if count > _MAX_ENTRIES:
        return {}
    table = tiff(ifd + 2, 12 * count)
    entries: dict[int, _Entry] = {}
    for offset in range(0, len(table) - 11, 12):
        tag, type_, value_count = struct.unpack(order + "HHI", table[offset : offset + 8])
        entries.setdefault(tag, _Entry(type_, value_count, table[offset + 8 : offset + 12]))
    return entries


def _value(tiff: TiffReader, order: str, entry: _Entry) -> bytes:
    if entry.size <= 4:
        return entry.field[: entry.size]
    if entry.size > _MAX_VALUE:
        return b""
    return tiff(struct.unpack(order + "I", entry.field)[0], entry.size)


def _integer(entry: _Entry, order: str) -> int:
    return int(struct.unpack(order + "I", entry.field)[0])


def _string(tiff: TiffReader, order: str, entry: _Entry | None) -> str:
    if entry is None or entry.type not in (2, 7):  # ASCII, or UNDEFINED bytes
        return ""
    return _text(_value(tiff, order, entry)) or ""


def _text(data: bytes) -> str | None:
    return data.split(b"\x00")[0].decode("latin-1").strip() or None
