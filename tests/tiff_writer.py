"""One small TIFF writer for the test RAW factories: any byte order and header magic, IFD
chains, SubIFDs, Exif IFDs, strips and JPEG blocks placed by offset, and maker notes.

Camera RAWs are TIFF containers with a few twists tifffile does not write: Canon's "CR"
mark after the header, Olympus' and Panasonic's own magic numbers, an Exif IFD with a maker
note that is an IFD of its own (at file offsets: Canon, Sony, Pentax) or a TIFF of its own
(offsets from its own header: Nikon). An `Ifd` is a list of `Tag`s; `tiff_bytes` lays the IFDs
out depth first (each IFD, then its values, then the IFDs and blocks it points at) and keeps
every IFD's offset, so a header field can point at one afterwards (`TiffFile.offset`).

    raw = Ifd([*strips(cfa_bytes), short(256, 600), ...])
    exif = Ifd([ascii(0x9003, "2024:05:06 07:08:09"), maker_note(b"", Ifd([...]))])
    data = tiff_bytes(Ifd([ascii(271, "NIKON CORPORATION"), sub_ifds(raw), exif_ifd(exif)]))
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

# TIFF field types, and the size of one value of each.
BYTE, ASCII, SHORT, LONG, RATIONAL = 1, 2, 3, 4, 5
SBYTE, UNDEFINED, SSHORT, SLONG, SRATIONAL = 6, 7, 8, 9, 10
_FORMATS = {
    BYTE: "B",
    ASCII: "B",
    SHORT: "H",
    LONG: "I",
    RATIONAL: "I",
    SBYTE: "b",
    UNDEFINED: "B",
    SSHORT: "h",
    SLONG: "i",
    SRATIONAL: "i",
}
_SIZES = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, SBYTE: 1}
_SIZES |= {UNDEFINED: 1, SSHORT: 2, SLONG: 4, SRATIONAL: 8}
# Tags whose value is an offset to another IFD (Exif, GPS, Interoperability, SubIFDs).
EXIF_IFD, GPS_IFD, SUB_IFDS, MAKER_NOTE = 34665, 34853, 330, 37500


@dataclass(frozen=True)
class Block:
    """Bytes stored elsewhere in the file; the tag holds their offset (LONG)."""

    data: bytes


@dataclass(frozen=True)
class Nested:
    """An IFD stored inline as an UNDEFINED value after `prefix` (a maker note whose offsets
    count from the start of the file)."""

    prefix: bytes
    ifd: Ifd


Value: TypeAlias = "int | str | bytes | Sequence[int] | Block | Nested | Ifd | Sequence[Ifd]"


@dataclass(frozen=True)
class Tag:
    tag: int
    type: int
    value: Value


@dataclass(eq=False)
class Ifd:
    """An image file directory: its tags (written in ascending order) and the IFD chained
    after it (`next`)."""

    tags: list[Tag] = field(default_factory=list)
    next: Ifd | None = None

    def __post_init__(self) -> None:
        numbers = [tag.tag for tag in self.tags]
        assert len(numbers) == len(set(numbers)), f"a tag twice in one IFD: {numbers}"


def ascii(tag: int, text: str) -> Tag:
    return Tag(tag, ASCII, text)


def byte(tag: int, *values: int) -> Tag:
    return Tag(tag, BYTE, values)


def short(tag: int, *values: int) -> Tag:
    return Tag(tag, SHORT, values)


def long(tag: int, *values: int) -> Tag:
    return Tag(tag, LONG, values)


def rational(tag: int, *pairs: tuple[int, int]) -> Tag:
    return Tag(tag, RATIONAL, tuple(v for pair in pairs for v in pair))


def srational(tag: int, *pairs: tuple[int, int]) -> Tag:
    return Tag(tag, SRATIONAL, tuple(v for pair in pairs for v in pair))


def undefined(tag: int, data: bytes) -> Tag:
    return Tag(tag, UNDEFINED, data)


def offset_to(tag: int, data: bytes) -> Tag:
    """A LONG holding the offset of `data`, stored elsewhere in the file."""
    return Tag(tag, LONG, Block(data))


def strips(data: bytes) -> list[Tag]:
    """StripOffsets and StripByteCounts of one strip holding `data`."""
    return [offset_to(273, data), long(279, len(data))]


def strip_image(
    size: tuple[int, int], bits: Sequence[int], compression: int, photometric: int, data: bytes
) -> list[Tag]:
    """The tags of an image of `size` (width, height) stored as one strip of `data`: one
    sample per entry of `bits` (their bits), `compression`, `photometric` interpretation."""
    return [
        long(256, size[0]),
        long(257, size[1]),
        short(258, *bits),
        short(259, compression),
        short(262, photometric),
        short(277, len(bits)),
        long(278, size[1]),
        *strips(data),
    ]


def jpeg_block(jpeg: bytes) -> list[Tag]:
    """JPEGInterchangeFormat and its length: a JPEG stored whole, as previews are."""
    return [offset_to(513, jpeg), long(514, len(jpeg))]


def sub_ifds(*ifds: Ifd) -> Tag:
    return Tag(SUB_IFDS, LONG, list(ifds))


def exif_ifd(ifd: Ifd) -> Tag:
    return Tag(EXIF_IFD, LONG, ifd)


def maker_note(prefix: bytes, ifd: Ifd) -> Tag:
    """A maker note: `prefix` (a maker's signature, possibly empty), then an IFD whose
    offsets count from the start of the file."""
    return Tag(MAKER_NOTE, UNDEFINED, Nested(prefix, ifd))


@dataclass(frozen=True)
class TiffFile:
    data: bytes
    offsets: dict[int, int]  # id(ifd) -> where it was written

    def offset(self, ifd: Ifd) -> int:
        return self.offsets[id(ifd)]


def tiff_bytes(first: Ifd, order: str = "<", magic: int = 42, header_extra: bytes = b"") -> bytes:
    """A TIFF file of `first` and everything it points at (see `tiff_file`)."""
    return tiff_file(first, order, magic, header_extra).data


def tiff_file(first: Ifd, order: str = "<", magic: int = 42, header_extra: bytes = b"") -> TiffFile:
    """Lay out a TIFF: the byte-order mark of `order` ("<" II, ">" MM), the 16-bit `magic`
    (42; Olympus' 0x4F52, Panasonic's 0x55...), the first IFD's offset, `header_extra` (Canon
    CR2's "CR" mark and raw IFD offset), then `first` and all it points at."""
    writer = _Writer(order)
    mark = b"II" if order == "<" else b"MM"
    writer.out += mark + struct.pack(order + "HI", magic, 8 + len(header_extra)) + header_extra
    writer.place(first)
    return TiffFile(bytes(writer.out), writer.offsets)


class _Writer:
    def __init__(self, order: str) -> None:
        self.order = order
        self.out = bytearray()
        self.offsets: dict[int, int] = {}

    def align(self) -> int:
        if len(self.out) % 2:
            self.out += b"\0"
        return len(self.out)

    def place(self, ifd: Ifd) -> int:
        """Write `ifd` at the end of the file, then what it points at; return its offset."""
        start = self.align()
        self.offsets[id(ifd)] = start
        tags = sorted(ifd.tags, key=lambda tag: tag.tag)
        self.out += b"\0" * (2 + 12 * len(tags) + 4)
        struct.pack_into(self.order + "H", self.out, start, len(tags))
        for index, tag in enumerate(tags):
            kind, count, payload = self.encode(tag)
            entry = start + 2 + 12 * index
            if len(payload) <= 4:
                field_value = payload.ljust(4, b"\0")
            else:
                field_value = struct.pack(self.order + "I", self.align())
                self.out += payload
            struct.pack_into(
                self.order + "HHI4s", self.out, entry, tag.tag, kind, count, field_value
            )
        if ifd.next is not None:
            following = self.place(ifd.next)
            struct.pack_into(self.order + "I", self.out, start + 2 + 12 * len(tags), following)
        return start

    def encode(self, tag: Tag) -> tuple[int, int, bytes]:
        """(type, count, bytes) of a tag; IFDs, blocks and nested IFDs are written first and
        the tag holds their offset."""
        value = tag.value
        if isinstance(value, Ifd):
            return LONG, 1, self.pack(LONG, [self.place(value)])
        if isinstance(value, Block):
            where = self.align()
            self.out += value.data
            return LONG, 1, self.pack(LONG, [where])
        if isinstance(value, Nested):
            return UNDEFINED, *self.nested(value)
        if isinstance(value, list) and all(isinstance(item, Ifd) for item in value):
            where = [self.place(item) for item in value]
            return LONG, len(where), self.pack(LONG, where)
        if isinstance(value, str):
            data = value.encode("latin-1") + b"\0"
            return tag.type, len(data), data
        if isinstance(value, bytes):
            return tag.type, len(value) // _SIZES[tag.type], value
        values = [value] if isinstance(value, int) else list(value)
        count = len(values) // 2 if tag.type in (RATIONAL, SRATIONAL) else len(values)
        return tag.type, count, self.pack(tag.type, values)

    def nested(self, nested: Nested) -> tuple[int, bytes]:
        """Write a maker note inline: its bytes go where `encode`'s caller puts a long value,
        i.e. at the end of the file, so they are written here and returned as the payload."""
        start = self.align()
        self.out += nested.prefix
        self.place(nested.ifd)
        payload = bytes(self.out[start:])
        del self.out[start:]
        # The caller writes these bytes back at this same offset, so the offsets inside hold.
        return len(payload), payload

    def pack(self, kind: int, values: Iterable[int]) -> bytes:
        items = list(values)
        return struct.pack(f"{self.order}{len(items)}{_FORMATS[kind]}", *items)
