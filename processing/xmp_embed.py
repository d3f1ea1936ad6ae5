"""XMP written into a copy of a JPEG, TIFF or DNG without touching its pixels.

Lightroom Classic reads sidecars only for proprietary RAW files; for JPEG, TIFF and DNG it
reads the XMP inside the file. So a copy gets the packet spliced in by hand: re-encoding (what
Pillow's `save(..., xmp=)` does) would not be lossless.

- JPEG: one APP1 segment `http://ns.adobe.com/xap/1.0/\\0<packet>` after the JFIF/Exif
  segments; every other byte, the entropy-coded data included, is copied unchanged.
- TIFF/DNG (classic TIFF, either byte order): the packet and a copy of IFD0 with tag 700
  (XMLPacket) are appended; the header then points at the new IFD0. Nothing else moves, so
  every offset in the file (strips, tiles, SubIFDs, maker notes) stays valid.

An XMP packet already in the file is merged with ours (`processing.xmp_merge`), never lost.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO, Literal

from processing.xmp_merge import merge_packets, wrap_packet

XMP_APP1_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
# An APP1 segment holds at most 65533 bytes after its length field.
MAX_APP1_PACKET = 0xFFFF - 2 - len(XMP_APP1_HEADER)
XMP_TIFF_TAG = 700
_DNG_VERSION_TAG = 50706
Kind = Literal["jpeg", "tiff"]
_COPY_CHUNK = 1 << 20


class CannotEmbed(ValueError):
    """The file's structure does not take an embedded packet (the caller writes a sidecar)."""


def embeddable_kind(head: bytes, original_filename: str) -> Kind | None:
    """`jpeg`, `tiff` (a TIFF or a DNG) or None, from the file's first bytes and its name.

    A proprietary RAW built on TIFF (CR2, NEF, ARW, …) is None: editors read its sidecar,
    and its maker's reader may not expect a rewritten IFD0. A DNG is told by its content.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        if head[8:10] == b"CR":  # Canon CR2 is a TIFF with this mark after the header
            return None
        if _has_tag(head, _DNG_VERSION_TAG):
            return "tiff"
        suffix = original_filename.rpartition(".")[2].lower()
        return "tiff" if suffix in {"tif", "tiff", "dng"} else None
    return None


def embed(kind: Kind, source: BinaryIO, ours: bytes) -> Iterator[bytes]:
    """The bytes of a copy of `source` with the XMP packet `ours` embedded (merged into the
    file's own packet where it has one). Raises CannotEmbed before yielding anything."""
    if kind == "jpeg":
        return _jpeg(source, ours)
    return _tiff(source, ours)


# JPEG ---------------------------------------------------------------------------------


def _jpeg(source: BinaryIO, ours: bytes) -> Iterator[bytes]:
    segments, rest = _jpeg_segments(source)
    theirs = [s for s in segments if s[1] == 0xE1 and s[2].startswith(XMP_APP1_HEADER)]
    packet = ours
    for _offset, _marker, payload in theirs[:1]:
        packet = merge_packets(payload[len(XMP_APP1_HEADER) :], ours)
    body = wrap_packet(packet)
    if len(body) > MAX_APP1_PACKET:
        raise CannotEmbed("the XMP packet is too large for one JPEG APP1 segment")
    kept = [s for s in segments if s not in theirs]
    at = 0  # after the leading JFIF (APP0) and Exif (APP1) segments, as cameras order them
    while at < len(kept) and (
        kept[at][1] == 0xE0 or (kept[at][1] == 0xE1 and kept[at][2].startswith(b"Exif\x00"))
    ):
        at += 1
    segment = _segment(0xE1, XMP_APP1_HEADER + body)
    return _jpeg_bytes(kept, at, segment, rest, source)


def _jpeg_bytes(
    kept: list[tuple[int, int, bytes]],
    at: int,
    segment: bytes,
    rest: bytes,
    source: BinaryIO,
) -> Iterator[bytes]:
    yield b"\xff\xd8"
    for index, (_offset, marker, payload) in enumerate(kept):
        if index == at:
            yield segment
        yield _segment(marker, payload)
    if at == len(kept):
        yield segment
    yield rest  # from the SOS marker on: the scan data, byte for byte
    yield from _chunks(source)


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_segments(source: BinaryIO) -> tuple[list[tuple[int, int, bytes]], bytes]:
    """The marker segments before the first scan, and the bytes read from its SOS on."""
    if source.read(2) != b"\xff\xd8":
        raise CannotEmbed("not a JPEG (no SOI marker)")
    segments: list[tuple[int, int, bytes]] = []
    offset = 2
    while True:
        byte = source.read(1)
        if byte != b"\xff":
            raise CannotEmbed(f"broken JPEG marker at byte {offset}")
        marker = source.read(1)
        while marker == b"\xff":  # fill bytes
            marker = source.read(1)
        if not marker:
            raise CannotEmbed("JPEG ends before its image data")
        code = marker[0]
        if code == 0xDA:  # SOS: everything from here is copied as it is
            return segments, b"\xff\xda"
        if code == 0x01 or 0xD0 <= code <= 0xD8:
            raise CannotEmbed(f"unexpected JPEG marker {code:#x} before the image data")
        length_bytes = source.read(2)
        if len(length_bytes) < 2:
            raise CannotEmbed("JPEG ends inside a segment")
        (length,) = struct.unpack(">H", length_bytes)
        payload = source.read(length - 2)
        if length < 2 or len(payload) != length - 2:
            raise CannotEmbed("JPEG ends inside a segment")
        segments.append((offset, code, payload))
        offset += 2 + length


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(_COPY_CHUNK):
        yield chunk


# TIFF / DNG ---------------------------------------------------------------------------

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


def _has_tag(head: bytes, tag: int) -> bool:
    """Whether IFD0 (when it lies within `head`) holds `tag`."""
    try:
        order, ifd0 = _tiff_header(head)
        entries = _ifd_entries(head, order, ifd0)
    except CannotEmbed:
        return False
    return any(entry_tag == tag for entry_tag, _raw in entries)


def _tiff_header(data: bytes) -> tuple[str, int]:
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8 or struct.unpack(order + "H", data[2:4])[0] != 42:
        raise CannotEmbed("not a classic TIFF (BigTIFF and others keep a sidecar)")
    (ifd0,) = struct.unpack(order + "I", data[4:8])
    if ifd0 < 8:
        raise CannotEmbed("IFD0 lies inside the header")
    return order, ifd0


def _ifd_entries(data: bytes, order: str, offset: int) -> list[tuple[int, bytes]]:
    """(tag, the 12 raw bytes) of each entry of the IFD at `offset`, in file order."""
    if offset + 2 > len(data):
        raise CannotEmbed("IFD0 lies outside the file")
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    end = offset + 2 + 12 * count
    if count == 0 or end + 4 > len(data):
        raise CannotEmbed("IFD0 is cut short")
    raws = [data[offset + 2 + 12 * k : offset + 14 + 12 * k] for k in range(count)]
    return [(struct.unpack(order + "H", raw[:2])[0], raw) for raw in raws]


def _tiff(source: BinaryIO, ours: bytes) -> Iterator[bytes]:
    source.seek(0, 2)
    size = source.tell()
    source.seek(0)
    head = source.read(8)
    if head[:4] not in (b"II*\x00", b"MM\x00*"):
        raise CannotEmbed("not a classic TIFF (BigTIFF and others keep a sidecar)")
    order, ifd0 = _tiff_header(head)
    source.seek(ifd0)
    count_bytes = source.read(2)
    if len(count_bytes) < 2:
        raise CannotEmbed("IFD0 lies outside the file")
    (count,) = struct.unpack(order + "H", count_bytes)
    table = source.read(12 * count + 4)
    entries = _ifd_entries(count_bytes + table, order, 0) if count else []
    if not entries:
        raise CannotEmbed("IFD0 is empty")
    next_ifd = table[12 * count : 12 * count + 4]

    packet = ours
    for tag, raw in entries:
        if tag == XMP_TIFF_TAG:
            packet = merge_packets(_entry_value(source, order, raw), ours)
    body = wrap_packet(packet)

    packet_at = size + (size & 1)  # word-aligned, as TIFF asks of offsets
    ifd_at = packet_at + len(body) + (len(body) & 1)
    xmp_entry = struct.pack(order + "HHII", XMP_TIFF_TAG, 1, len(body), packet_at)
    table_entries = [raw for tag, raw in entries if tag != XMP_TIFF_TAG] + [xmp_entry]
    table_entries.sort(key=lambda raw: struct.unpack(order + "H", raw[:2])[0])
    new_ifd = struct.pack(order + "H", len(table_entries)) + b"".join(table_entries) + next_ifd
    if ifd_at + len(new_ifd) >= 1 << 32:
        raise CannotEmbed("the file is too large for a classic TIFF offset")
    tail = b"\x00" * (size & 1) + body + b"\x00" * (len(body) & 1) + new_ifd
    return _tiff_bytes(source, head[:4] + struct.pack(order + "I", ifd_at), tail)


def _tiff_bytes(source: BinaryIO, header: bytes, tail: bytes) -> Iterator[bytes]:
    yield header
    source.seek(8)
    yield from _chunks(source)
    yield tail


def _entry_value(source: BinaryIO, order: str, raw: bytes) -> bytes:
    type_, count = struct.unpack(order + "HI", raw[2:8])
    length = _TYPE_SIZES.get(type_, 1) * count
    if length <= 4:
        return raw[8 : 8 + length]
    (offset,) = struct.unpack(order + "I", raw[8:12])
    position = source.tell()
    source.seek(offset)
    value = source.read(length)
    source.seek(position)
    return value


def copy_with_xmp(kind: Kind, source: BinaryIO, ours: bytes, target: BinaryIO) -> None:
    """Write a copy of `source` with `ours` embedded into `target` (see `embed`)."""
    for chunk in embed(kind, source, ours):
        target.write(chunk)
