"""RAW+JPEG pairs stored as one image: the second file to arrive becomes the companion of the
image the first made (processing/pairing.py says when two files are one photo).

Uploads and imports in place both call `lock_stems` (after their hash locks) and then
`attach_to_partner` for each new file before creating an image for it. Within one request or
one import chunk the rendered file (JPEG, HEIC) is stored first (`rendered_first`), so that it
is the main file: the thumbnail, quality and embedding are made from the camera's full-size
rendering, never from the RAW's preview or a half-size development. A RAW that arrived alone
earlier gives its place to its JPEG when that comes later: the RAW becomes the companion, and
the image (same id, batches and decisions) is processed again from the JPEG.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TypeVar

from sqlalchemy.orm import Session

from crud import crud_image
from database import unit_of_work
from database.models import Image
from processing.metadata_extraction import ImageMetadata
from processing.pairing import CANDIDATE_WINDOW, PairKey, is_pair, is_raw, pair_stem
from utils.file_handling import storage_path, thumbnail_relative_path

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


@dataclass(frozen=True, slots=True)
class Paired:
    """The image a file was attached to; `reprocess`: its main file changed (the JPEG took
    the RAW's place), so it is to be processed again once this commits."""

    image: Image
    reprocess: bool = False


def attach_to_partner(
    session: Session, storage_root: Path, key: PairKey, file: CompanionFile
) -> Paired | None:
    """The image whose other half `file` is, now holding it; None when no image is (the file
    then makes an image of its own). A JPEG arriving after its RAW becomes the main file: the
    RAW's thumbnail goes once this commits."""
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
            if not is_raw(candidate.mime_type):
                return Paired(candidate)
            replaced = _make_companion_main(candidate)
            with suppress(ValueError):
                thumbnail = storage_path(storage_root, thumbnail_relative_path(replaced))
                unit_of_work.remove_after_commit(session, thumbnail)
            return Paired(candidate, reprocess=True)
    return None


# The columns of the main file and of the companion, side by side.
_FILE_COLUMNS = (
    ("original_filename", "companion_original_filename"),
    ("file_path", "companion_file_path"),
    ("source_path", "companion_source_path"),
    ("source_mtime_ns", "companion_source_mtime_ns"),
    ("image_hash", "companion_hash"),
    ("file_size", "companion_size"),
    ("mime_type", "companion_mime_type"),
)


def _make_companion_main(image: Image) -> str:
    """Swap the image's two files and forget what was made from the old main file (the
    worker makes it again; crud_image.update_processed_image refuses results computed from the
    old file); returns the old main file's name."""
    replaced = image.filename
    for main, companion in _FILE_COLUMNS:
        main_value, companion_value = getattr(image, main), getattr(image, companion)
        setattr(image, main, companion_value)
        setattr(image, companion, main_value)
    image.filename = PurePosixPath(image.file_path).name
    image.has_thumbnail = False
    image.quality_version = None
    image.features = None
    image.embedding_model = None
    image.processing_error = None
    return replaced
