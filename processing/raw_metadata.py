"""EXIF metadata of camera RAW files, read with Pillow's TIFF IFD parser.

A RAW keeps its EXIF in TIFF-structured IFDs; only where they are differs:
- TIFF-based RAWs (DNG, CR2, NEF, ARW, PEF, SRW, ORF, RW2): the file itself (ORF and RW2 with a
  header magic of their own, read as a standard TIFF header of the same byte order);
- CR3 (ISO-BMFF): the CMT1 (IFD0), CMT2 (Exif IFD) and CMT4 (GPS IFD) boxes inside Canon's
  'uuid' box in 'moov', each a complete little TIFF;
- RAF: the APP1 Exif segment of the JPEG preview the RAF header points at.
Nikon, Canon and Fujifilm keep the body's serial in their maker notes: read from there
(processing/maker_notes.py; in a CR3 the Canon maker note is the CMT3 box) when the Exif IFD has
no BodySerialNumber.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image
from PIL.ExifTags import IFD, Base

from processing.maker_notes import (
    body_serial,
    bytes_reader,
    canon_note_serial,
    exif_blob_serial,
    file_reader,
    with_body_serial,
)
from processing.metadata_extraction import ImageMetadata, metadata_from_tags
from processing.raw import RawHeader

_CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_TIFF_ORDER = {b"II": "<", b"MM": ">"}
# Bytes read at most for one container piece: a CMT box, a RAF preview's leading segments.
_MAX_PIECE = 1024 * 1024
_MAX_BOXES = 256
_CMT_BOXES = (b"CMT1", b"CMT2", b"CMT3", b"CMT4")  # IFD0, Exif IFD, Canon maker note, GPS IFD
_EMPTY: Mapping[int, Any] = {}
# What Pillow's IFD parser raises on a damaged IFD; a RAW's metadata never fails its upload.
_PARSE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    struct.error,
    KeyError,
    TypeError,
    IndexError,
    UserWarning,  # Pillow's "Metadata Warning" on a mistyped tag, when warnings are errors
)


def extract_raw_metadata(path: Path, header: RawHeader) -> ImageMetadata:
    """The RAW's metadata; its size and orientation are LibRaw's (`header`), which are those
    of the picture the worker decodes."""
    try:
        with path.open("rb") as file:
            ifd0, exif, gps = _read_tags(file, header.kind)
    except _PARSE_ERRORS:
        ifd0, exif, gps = _EMPTY, _EMPTY, _EMPTY
    size = (header.width, header.height)
    return metadata_from_tags(ifd0, exif, gps, size, header.orientation)


_Tags = tuple[Mapping[int, Any], Mapping[int, Any], Mapping[int, Any]]


def _read_tags(file: BinaryIO, kind: str) -> _Tags:
    if kind == "CR3":
        return _cr3_tags(file)
    if kind == "RAF":
        return _raf_tags(file)
    return _tiff_tags(file)


def _tiff_tags(file: BinaryIO) -> _Tags:
    head = file.read(8)
    order = _TIFF_ORDER[head[:2]]
    exif = Image.Exif()
    exif.endian = order  # a standard header of this byte order stands for ORF's and RW2's
    exif.load_from_fp(file, struct.unpack(order + "I", head[4:8])[0])
    ifd0, exif_ifd, gps = _split(exif)
    return ifd0, with_body_serial(exif_ifd, lambda: body_serial(file_reader(file))), gps


def _split(exif: Image.Exif) -> _Tags:
    ifd0 = dict(exif)
    return ifd0, _sub_ifd(exif, IFD.Exif), _sub_ifd(exif, IFD.GPSInfo)


def _sub_ifd(exif: Image.Exif, tag: int) -> Mapping[int, Any]:
    try:
        return exif.get_ifd(tag)
    except _PARSE_ERRORS:
        return _EMPTY


def _little_tiff(data: bytes) -> Mapping[int, Any]:
    exif = Image.Exif()
    exif.load(data)
    return dict(exif)


def _cr3_tags(file: BinaryIO) -> _Tags:
    canon = _find_box(file, [b"moov", b"uuid"], _CANON_UUID)
    if canon is None:
        return _EMPTY, _EMPTY, _EMPTY
    start, end = canon
    boxes = dict(_child_boxes(file, start, end))
    cmt1, cmt2, cmt3, cmt4 = (_box_bytes(file, boxes.get(name)) for name in _CMT_BOXES)
    ifd0 = _little_tiff(cmt1) if cmt1 else _EMPTY
    model = ifd0.get(Base.Model)
    exif = with_body_serial(
        _little_tiff(cmt2) if cmt2 else _EMPTY,
        lambda: canon_note_serial(bytes_reader(cmt3), model if isinstance(model, str) else ""),
    )
    return ifd0, exif, _little_tiff(cmt4) if cmt4 else _EMPTY


def _box_bytes(file: BinaryIO, span: tuple[int, int] | None) -> bytes:
    if span is None or span[1] - span[0] > _MAX_PIECE:
        return b""
    file.seek(span[0])
    return file.read(span[1] - span[0])


def _find_box(file: BinaryIO, path: list[bytes], uuid: bytes) -> tuple[int, int] | None:
    """The payload span of the box at `path` (the last one a 'uuid' box of this `uuid`)."""
    file.seek(0, 2)
    start, end = 0, file.tell()
    for depth, name in enumerate(path):
        last = depth == len(path) - 1
        for kind, (payload, box_end) in _child_boxes(file, start, end):
            if kind != name:
                continue
            if last:
                file.seek(payload)
                if file.read(16) != uuid:
                    continue
                payload += 16
            start, end = payload, box_end
            break
        else:
            return None
    return start, end


def _child_boxes(file: BinaryIO, start: int, end: int) -> list[tuple[bytes, tuple[int, int]]]:
    """(type, (payload start, end)) of the ISO-BMFF boxes between `start` and `end`."""
    boxes: list[tuple[bytes, tuple[int, int]]] = []
    offset = start
    while offset + 8 <= end and len(boxes) < _MAX_BOXES:
        file.seek(offset)
        size, kind = struct.unpack(">I4s", file.read(8))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", file.read(8))
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            break
        boxes.append((kind, (offset + header, offset + size)))
        offset += size
    return boxes


def _raf_tags(file: BinaryIO) -> _Tags:
    file.seek(84)
    offset, length = struct.unpack(">II", file.read(8))
    file.seek(offset)
    segment = _jpeg_exif_segment(file.read(min(length, _MAX_PIECE)))
    if segment is None:
        return _EMPTY, _EMPTY, _EMPTY
    exif = Image.Exif()
    exif.load(segment)
    ifd0, exif_ifd, gps = _split(exif)
    return ifd0, with_body_serial(exif_ifd, lambda: exif_blob_serial(segment)), gps


def _jpeg_exif_segment(jpeg: bytes) -> bytes | None:
    """The payload of the first APP1 'Exif' segment of `jpeg`, read marker by marker."""
    if not jpeg.startswith(b"\xff\xd8"):
        return None
    offset = 2
    while offset + 4 <= len(jpeg) and jpeg[offset] == 0xFF:
        marker = jpeg[offset + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata after
            return None
        (length,) = struct.unpack(">H", jpeg[offset + 2 : offset + 4])
        payload = jpeg[offset + 4 : offset + 2 + length]
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            return payload
        offset += 2 + length
    return None
