"""A batch's picks for every editor: copies of JPEG, TIFF and DNG originals with the XMP
inside (Lightroom reads no sidecar for those), sidecars for everything else (RAW files).

The zip is streamed: copies of a whole shoot can be gigabytes, never held in memory. Copies
are stored uncompressed (JPEG data does not compress); the archive is ZIP64 where it must be.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from processing.xmp_embed import CannotEmbed, Kind, embed, embeddable_kind
from processing.xmp_merge import UnreadableXmp
from services import xmp_export
from services.originals import companion_path, original_path
from utils.file_handling import StorageLayout

logger = logging.getLogger(__name__)
_HEAD_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class Member:
    """One file of the zip: a sidecar, or a copy of `source` with the packet embedded."""

    name: str
    packet: bytes
    source: Path | None = None
    kind: Kind | None = None


def plan(
    session: Session, settings: StorageLayout, batch_id: int, options: xmp_export.XmpOptions
) -> list[Member]:
    """What the zip will hold, decided before the first byte is sent: each JPEG, TIFF or DNG
    whose structure takes the packet becomes a copy named like the photo, the rest sidecars.
    Both files of a RAW+JPEG pair get the packet (a copy of the JPEG, a sidecar for the RAW)."""
    wanted: list[tuple[int, str]] = []
    members: list[Member] = []
    for association, pick in xmp_export.batch_picks(session, batch_id):
        packet = xmp_export.sidecar_xml(pick, options)
        files = [(pick.original_filename, original_path(settings, association.image))]
        if pick.companion_filename is not None:
            files.append((pick.companion_filename, companion_path(settings, association.image)))
        names: set[str] = set()
        for filename, source in files:
            kind = _embeddable(source, filename, packet) if source else None
            if kind is not None:
                member = Member(xmp_export.photo_name(pick, filename), packet, source, kind)
            else:
                member = Member(xmp_export.sidecar_name(pick, options.naming, filename), packet)
            if member.name not in names:  # a pair's two sidecars named `basename` are one
                names.add(member.name)
                wanted.append((pick.image_id, member.name))
                members.append(member)
    paths = xmp_export.unique_paths(wanted)
    return [
        Member(path, m.packet, m.source, m.kind) for path, m in zip(paths, members, strict=True)
    ]


def _embeddable(source: Path, original_filename: str, packet: bytes) -> Kind | None:
    try:
        with source.open("rb") as file:
            kind = embeddable_kind(file.read(_HEAD_BYTES), original_filename)
            if kind is None:
                return None
            file.seek(0)
            embed(kind, file, packet)  # parses the structure; raises when it cannot take it
            return kind
    except (OSError, CannotEmbed, UnreadableXmp) as exc:
        logger.info("%s: a sidecar instead of an embedded copy: %s", original_filename, exc)
        return None


class _Sink:
    """What zipfile writes, handed out in pieces (zipfile writes data descriptors to a
    stream it cannot seek in)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def stream_zip(members: list[Member]) -> Iterator[bytes]:
    """The zip's bytes, piece by piece. A copy whose original changed or went away since the
    plan becomes a sidecar named `<photo name>.xmp`."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for member in members:
            if member.source is not None and member.kind is not None:
                copied = yield from _copy(archive, sink, member)
                if copied:
                    continue
                name = member.name + ".xmp"
            else:
                name = member.name
            archive.writestr(xmp_export.zip_member(name), member.packet)
            yield sink.take()
    yield sink.take()


def _copy(archive: zipfile.ZipFile, sink: _Sink, member: Member) -> Generator[bytes, None, bool]:
    assert member.source is not None
    assert member.kind is not None
    try:
        file = member.source.open("rb")
    except OSError:
        return False
    with file:
        try:
            chunks = embed(member.kind, file, member.packet)
        except (CannotEmbed, UnreadableXmp, OSError):
            return False
        info = xmp_export.zip_member(member.name, zipfile.ZIP_STORED)
        with archive.open(info, "w", force_zip64=True) as out:
            for chunk in chunks:
                out.write(chunk)
                yield sink.take()
    return True
