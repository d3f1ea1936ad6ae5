"""RAW+JPEG pairs stored as one image: the second file to arrive becomes the companion of the
image the first made (processing/pairing.py says when two files are one photo).

Uploads and imports in place both call `lock_stems` (after their hash locks) and then
`attach_to_partner` for each new file before creating an image for it. Within one request or
one import chunk the rendered file (JPEG, HEIC) is stored first (`rendered_first`), so that it
is the main file: the thumbnail, quality and embedding are made from the camera's full-size
rendering. A RAW that arrived alone earlier stays the main file when its JPEG comes later (it
was judged on its embedded preview, processing/raw.py, the camera's same rendering), and the
JPEG becomes its companion: the image keeps its id, rank and decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from crud import crud_image
from database.models import Image
from processing.metadata_extraction import ImageMetadata
from processing.pairing import CANDIDATE_WINDOW, PairKey, is_pair, is_raw, pair_stem

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CompanionFile:
    """The second file of a photo, as the image row records it."""

    original_filename: str
    file_path: str
    source_path: str | None
    source_mtime_ns: int | None
    sha256: str
    size: int
    mime_type: str

    def columns(self) -> dict[str, object]:
        return {
            "companion_original_filename": self.original_filename,
            "companion_file_path": self.file_path,
            "companion_source_path": self.source_path,
            "companion_source_mtime_ns": self.source_mtime_ns,
            "companion_hash": self.sha256,
            "companion_size": self.size,
            "companion_mime_type": self.mime_type,
        }


def file_key(filename: str, mime_type: str, metadata: ImageMetadata) -> PairKey:
    return PairKey(
        filename=filename,
        mime_type=mime_type,
        shot_at=metadata.shot_at,
        offset_minutes=metadata.shot_at_offset_minutes,
        make=metadata.camera_make,
        model=metadata.camera_model,
        serial=metadata.camera_serial,
    )


def image_key(image: Image) -> PairKey:
    return PairKey(
        filename=image.original_filename,
        mime_type=image.mime_type,
        shot_at=image.shot_at,
        offset_minutes=image.shot_at_offset_minutes,
        make=image.camera_make,
        model=image.camera_model,
        serial=image.camera_serial,
    )


def rendered_first(items: Iterable[T], mime_type: Callable[[T], str]) -> list[T]:
    """The items with every RAW after the rendered files, otherwise in their order."""
    return sorted(items, key=lambda item: is_raw(mime_type(item)))


def lock_stems(session: Session, filenames: Iterable[str]) -> None:
    """Take the pairing locks for these files (crud_image.lock_pair_stems)."""
    crud_image.lock_pair_stems(session, {pair_stem(name) for name in filenames})


def attach_to_partner(session: Session, key: PairKey, file: CompanionFile) -> Image | None:
    """The image whose other half `file` is, now holding it as its companion; None when no
    image is (the file then makes an image of its own)."""
    if key.shot_at is None:
        return None
    shot_at: datetime = key.shot_at
    for candidate in crud_image.pair_candidates(
        session, pair_stem(key.filename), shot_at, CANDIDATE_WINDOW
    ):
        if is_pair(image_key(candidate), key) and crud_image.attach_companion(
            session, candidate.id, file.columns()
        ):
            session.refresh(candidate)
            return candidate
    return None
