"""Uploads, duplicates, serving and deleting images."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crud import crud_batch, crud_image
from database import readiness, unit_of_work
from database.models import Image
from processing.decode_gate import DecodeBusy, DecodeTooLarge
from processing.pairing import is_raw
from processing.validation import InspectedImage, InvalidImage, NotAPhoto, inspect_image_file
from services import companions, originals, ranking
from services.background import enqueue_processing
from services.background.handoff import decode_shelf
from services.background.pipeline import analysis_side
from services.errors import (
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
    is_storage_fault,
)
from services.lock_conflicts import retry_on_lock_conflict
from utils.file_handling import (
    HashingSpool,
    SingleFlight,
    SpooledFile,
    StorageLayout,
    StorageUnavailable,
    UploadTooLarge,
    check_storage,
    decode_for_thumbnail,
    make_thumbnail,
    spool_upload,
    storage_dirs,
    storage_path,
    thumbnail_relative_path,
    write_jpeg_atomically,
)

logger = logging.getLogger(__name__)

# C0/C1 controls (U+009B starts a terminal escape), line separators and bidi overrides
# (U+202E makes "gpj.exe" read as "exe.jpg"). The zero-width joiner stays: emoji need it.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MAX_FILENAME_LENGTH = 255
# Which original of an image to serve: its main file, a RAW+JPEG pair's companion, or the RAW.
WhichFile = Literal["main", "companion", "raw"]


class UploadSettings(StorageLayout, Protocol):
    """What an upload reads of the settings, besides the storage layout."""

    @property
    def max_files_per_request(self) -> int: ...
    @property
    def max_upload_bytes(self) -> int: ...
    @property
    def max_image_pixels(self) -> int: ...
    @property
    def storage_min_free_bytes(self) -> int: ...


@dataclass(frozen=True, slots=True)
class IncomingUpload:
    """A file sent to be stored: a stream to copy into `incoming/`, or (from the HTTP API) a
    spool that was written and hashed there as the request arrived, copied no more."""

    filename: str | None
    stream: BinaryIO | HashingSpool


@dataclass(frozen=True, slots=True)
class UploadResult:
    image: Image
    is_duplicate: bool = False
    message: str | None = None
    # Stored as the second file of an existing image (a RAW+JPEG pair's, services/companions):
    # nothing to process, unless it became the main file (`reprocess`).
    paired: bool = False
    reprocess: bool = False


@dataclass(frozen=True, slots=True)
class Rejection:
    filename: str
    reason: str
    too_large: bool = False
    not_a_photo: bool = False  # another kind of media (a video)


@dataclass(frozen=True, slots=True)
class UploadReport:
    accepted: list[UploadResult]
    rejected: list[Rejection]

    @property
    def new_image_ids(self) -> list[int]:
        return [
            r.image.id
            for r in self.accepted
            if not r.is_duplicate and (r.reprocess or not r.paired)
        ]


@dataclass(frozen=True, slots=True)
class _Prepared:
    original_filename: str
    spooled: SpooledFile
    inspected: InspectedImage


def clean_filename(name: str | None) -> str:
    """The client's file name without directories or control characters, at most 255 chars."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _CONTROL_CHARS.sub("", base).strip().lstrip(".") or "upload"
    if len(base) <= MAX_FILENAME_LENGTH:
        return base
    stem, dot, ext = base.rpartition(".")
    if dot and 0 < len(ext) <= 16:
        return stem[: MAX_FILENAME_LENGTH - len(ext) - 1] + "." + ext
    return base[:MAX_FILENAME_LENGTH]


def upload_images(
    session: Session, settings: UploadSettings, uploads: list[IncomingUpload]
) -> UploadReport:
    """Store every acceptable upload once (duplicates answer with the existing image).

    Files are spooled and decoded before any database work, so the transaction stays short.
    Raises when no file at all was accepted, with each file's reason.
    """
    if not uploads:
        raise InvalidInput("No files were sent: use the multipart field 'files'.")
    if len(uploads) > settings.max_files_per_request:
        raise InvalidInput(
            f"Too many files in one request ({len(uploads)}); "
            f"the limit is {settings.max_files_per_request}."
        )
    _check_storage(settings)
    prepared: list[_Prepared] = []
    rejected: list[Rejection] = []
    try:
        for upload in uploads:
            outcome = _prepare(settings, upload)
            (rejected if isinstance(outcome, Rejection) else prepared).append(outcome)  # type: ignore[arg-type]
        accepted: list[UploadResult] = []
        crud_image.lock_hashes(session, [item.spooled.sha256 for item in prepared])
        companions.lock_stems(session, [item.original_filename for item in prepared])
        # A RAW+JPEG pair's JPEG is stored first: it becomes the main file (services/companions).
        prepared = companions.rendered_first(prepared, lambda item: item.inspected.mime_type)
        while prepared:
            accepted.append(_store(session, settings, prepared[0]))
            prepared.pop(0)
    finally:
        for leftover in prepared:
            leftover.spooled.path.unlink(missing_ok=True)

    if not accepted:
        _raise_all_rejected(rejected)
    report = UploadReport(accepted=accepted, rejected=rejected)
    enqueue_processing(session, report.new_image_ids)
    return report


def _check_storage(settings: UploadSettings) -> None:
    """Refuse before writing anything when the storage cannot take the files (a folder
    deleted while the server runs is made again first)."""
    try:
        check_storage(storage_dirs(settings), settings.storage_min_free_bytes, remake=True)
    except StorageUnavailable as exc:
        raise Unavailable(f"Storage is unavailable: {exc}; try again shortly.") from exc


def _raise_all_rejected(rejected: list[Rejection]) -> None:
    reasons = "; ".join(f"{r.filename}: {r.reason}" for r in rejected)
    extra = {"rejected": [{"filename": r.filename, "reason": r.reason} for r in rejected]}
    message = f"No file was accepted. {reasons}"
    if all(r.too_large for r in rejected):
        raise PayloadTooLarge(message, extra=extra)
    if all(r.not_a_photo for r in rejected):
        raise UnsupportedMediaType(message, extra=extra)
    raise InvalidInput(message, extra=extra)


def _prepare(settings: UploadSettings, upload: IncomingUpload) -> _Prepared | Rejection:
    name = clean_filename(upload.filename)
    too_large = f"file is larger than the limit of {settings.max_upload_bytes} bytes"
    if isinstance(upload.stream, HashingSpool):
        spooled = upload.stream.finish()
        if spooled.size > settings.max_upload_bytes:
            spooled.path.unlink(missing_ok=True)
            return Rejection(name, too_large, too_large=True)
    else:
        try:
            spooled = spool_upload(upload.stream, settings.incoming_dir, settings.max_upload_bytes)
        except UploadTooLarge:
            return Rejection(name, too_large, too_large=True)
    if spooled.size == 0:
        spooled.path.unlink(missing_ok=True)
        return Rejection(name, "file is empty")
    # Decoded at the size the worker needs, and handed on to it (when it runs in this
    # process): each photo is decoded once.
    keep_side = analysis_side(settings.thumbnail_size) if decode_shelf().capacity_bytes else 0
    try:
        inspected = inspect_image_file(spooled.path, settings.max_image_pixels, keep_side)
    except InvalidImage as exc:
        spooled.path.unlink(missing_ok=True)
        return Rejection(name, str(exc), not_a_photo=isinstance(exc, NotAPhoto))
    except DecodeTooLarge as exc:
        spooled.path.unlink(missing_ok=True)
        return Rejection(name, str(exc), too_large=True)
    except DecodeBusy as exc:
        spooled.path.unlink(missing_ok=True)
        raise Unavailable(f"{name}: {exc}") from None
    except BaseException:
        spooled.path.unlink(missing_ok=True)
        raise
    if inspected.pixels is not None:
        # Shelved at once (bounded there), not held with the request's other files.
        decode_shelf().offer(spooled.sha256, inspected.pixels, keep_side)
        inspected = dataclasses.replace(inspected, pixels=None)
    return _Prepared(original_filename=name, spooled=spooled, inspected=inspected)


def _duplicate(existing: Image) -> UploadResult:
    if existing.has_thumbnail:  # processed already: the worker will not want the decode
        decode_shelf().take(existing.image_hash, 0)
    return UploadResult(existing, True, f"Duplicate of existing image ID: {existing.id}")


def _store(session: Session, settings: UploadSettings, item: _Prepared) -> UploadResult:
    existing = crud_image.get_image_by_hash(session, item.spooled.sha256)
    if existing is not None:
        item.spooled.path.unlink(missing_ok=True)
        return _duplicate(existing)

    filename = f"{uuid.uuid4().hex}{item.inspected.extension}"
    staged = settings.incoming_dir / filename
    metadata, adjusted = crud_image.fit_to_columns(Image, item.inspected.metadata.as_dict())
    os.replace(item.spooled.path, staged)
    try:
        paired = _attach_to_partner(session, settings, item, filename)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    if paired is not None:
        unit_of_work.move_after_commit(session, staged, settings.images_dir / filename)
        if not paired.reprocess:  # the other file is the one judged: no use for this decode
            decode_shelf().take(item.spooled.sha256, 0)
        message = f"Stored as the second file of image {paired.image.id} (RAW+JPEG pair)."
        return UploadResult(paired.image, message=message, paired=True, reprocess=paired.reprocess)
    image = Image(
        filename=filename,
        original_filename=item.original_filename,
        file_path=f"images/{filename}",
        image_hash=item.spooled.sha256,
        file_size=item.spooled.size,
        mime_type=item.inspected.mime_type,
        has_thumbnail=False,
        **metadata,
    )
    try:
        with session.begin_nested():
            crud_image.add_image(session, image)
    except IntegrityError:
        # Another request stored the same bytes between our lookup and our insert.
        staged.unlink(missing_ok=True)
        existing = crud_image.get_image_by_hash(session, item.spooled.sha256)
        if existing is None:
            raise
        return _duplicate(existing)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    unit_of_work.move_after_commit(session, staged, settings.images_dir / filename)
    if adjusted:
        logger.info("upload %s: metadata adjusted: %s", item.original_filename, adjusted)
        return UploadResult(image, message="Stored; metadata adjusted: " + "; ".join(adjusted))
    return UploadResult(image)


def _attach_to_partner(
    session: Session, settings: StorageLayout, item: _Prepared, filename: str
) -> companions.Paired | None:
    key = companions.file_key(
        item.original_filename, item.inspected.mime_type, item.inspected.metadata
    )
    file = companions.CompanionFile(
        original_filename=item.original_filename,
        file_path=f"images/{filename}",
        source_path=None,
        source_mtime_ns=None,
        sha256=item.spooled.sha256,
        size=item.spooled.size,
        mime_type=item.inspected.mime_type,
    )
    return companions.attach_to_partner(session, settings.storage_root, key, file)


def get_image(session: Session, image_id: int) -> Image:
    image = crud_image.get_image(session, image_id)
    if image is None:
        raise NotFound(f"Image {image_id} not found.")
    return image


def list_images(
    session: Session, image_columns: Sequence[str], offset: int, limit: int | None
) -> tuple[list[str], list[tuple[Any, ...]], int]:
    """A page of images as plain rows of `image_columns` (the names read, the rows) and how
    many images there are."""
    names, rows = crud_image.image_rows(session, image_columns, offset, limit)
    return names, rows, crud_image.count_images(session)


def original_file(session: Session, settings: StorageLayout, image_id: int) -> tuple[Path, Image]:
    """The stored original of an image, with its row."""
    image = get_image(session, image_id)
    path = originals.original_path(settings, image)
    if path is None or not path.is_file():
        if image.source_path is not None:
            raise NotFound(
                f"The original of image {image_id} is no longer at {image.source_path} "
                "(imported in place: moved, renamed or deleted since)."
            )
        raise NotFound(f"The file of image {image_id} is not available yet.")
    return path, image


def promote_next_keepers(session: Session, groups: Iterable[tuple[int, str]]) -> None:
    """After members left these (batch, label) groups, rank each again (services/ranking.py):
    the next image becomes its keeper, ranks are 1..n again, reasons said against it."""
    by_batch: dict[int, set[str]] = {}
    for batch_id, label in groups:
        if readiness.is_grouped(label):
            by_batch.setdefault(batch_id, set()).add(label)
    for batch_id, labels in sorted(by_batch.items()):
        ranking.rerank_groups(session, batch_id, labels)
    session.flush()


@dataclass(frozen=True, slots=True)
class OriginalFile:
    """One original of an image, opened: the main file or a RAW+JPEG pair's companion."""

    file: BinaryIO
    original_filename: str
    mime_type: str


def _companion_file(
    session: Session, settings: StorageLayout, image_id: int, which: WhichFile
) -> tuple[Path, str, str] | None:
    """(path, file name, MIME type) of the file `which` names, None when it is the main file."""
    image = get_image(session, image_id)
    if which == "main" or (which == "raw" and is_raw(image.mime_type)):
        return None
    path = originals.companion_path(settings, image)
    if which == "raw" and not is_raw(image.companion_mime_type):
        raise NotFound(f"Image {image_id} has no RAW file.")
    if path is None or image.companion_original_filename is None:
        raise NotFound(f"Image {image_id} has one file only (no RAW+JPEG companion).")
    if not path.is_file():
        raise NotFound(f"The companion file of image {image_id} is no longer available.")
    assert image.companion_mime_type is not None
    return path, image.companion_original_filename, image.companion_mime_type


def open_original(
    session: Session, settings: StorageLayout, image_id: int, which: WhichFile = "main"
) -> OriginalFile:
    """The original `which` names (the main file, the pair's companion, or whichever of the
    two is the RAW), opened: a delete committing meanwhile cannot take it away."""
    companion = _companion_file(session, settings, image_id, which)
    if companion is None:
        path, image = original_file(session, settings, image_id)
        name, mime_type = image.original_filename, image.mime_type
    else:
        path, name, mime_type = companion
    try:
        return OriginalFile(path.open("rb"), name, mime_type)
    except FileNotFoundError as exc:
        raise NotFound(f"Image {image_id} not found.") from exc


@retry_on_lock_conflict
def delete_image(session: Session, settings: StorageLayout, image_id: int) -> None:
    """Delete the row (and its batch memberships) now, the files once that has committed.

    The image's batches are locked first, then the image (the lock order everywhere): its
    groups are re-ranked under the same locks as an analysis, a re-rank or a removal, so every
    group keeps exactly one keeper whatever runs at the same time."""
    batches = crud_batch.batches_of_image(session, image_id)
    crud_batch.lock_batches(session, batches)
    image = crud_image.lock_image_for_update(session, image_id)
    if image is None:
        raise NotFound(f"Image {image_id} not found.")
    # Added to another batch between the first read and the image lock (rare): lock it too.
    crud_batch.lock_batches(session, crud_batch.batches_of_image(session, image_id) - batches)
    # An original imported in place is the photographer's: only our thumbnail goes with it.
    paths = originals.owned_files(settings, image)
    with suppress(ValueError):
        thumbnail = thumbnail_relative_path(image.filename)
        paths.append(storage_path(settings.storage_root, thumbnail))
    groups = crud_batch.ranked_groups_of(session, [image_id])
    crud_image.delete_image(session, image)
    promote_next_keepers(session, groups)
    for path in paths:
        unit_of_work.remove_after_commit(session, path)


# On-demand thumbnails: one decode per image however many requests wait for it, and at most
# two at a time in this process (each also passes the decode gate, shared with uploads and
# the worker, which bounds their memory).
_ON_DEMAND_THUMBNAILS = SingleFlight(limit=2)


def _render_thumbnail(settings: StorageLayout, image_id: int, source: Path, path: Path) -> None:
    try:
        img = decode_for_thumbnail(source, settings.thumbnail_size)
    except FileNotFoundError as exc:
        raise NotFound(f"Image {image_id} not found.") from exc
    except DecodeBusy as exc:
        raise Unavailable(str(exc)) from None
    except DecodeTooLarge as exc:
        raise NotFound(f"Image {image_id} has no thumbnail: {exc}.") from None
    except Exception as exc:
        if is_storage_fault(exc):
            raise  # the disk, not the picture: a 503
        raise NotFound(f"Image {image_id} has no thumbnail: it could not be decoded.") from exc
    # Writing may fail for want of space: that propagates as the fault it is, not as a 404.
    write_jpeg_atomically(make_thumbnail(img, settings.thumbnail_size), path)


def thumbnail_bytes(session: Session, settings: StorageLayout, image_id: int) -> bytes:
    """The image's JPEG thumbnail; made now when the worker has not made it yet.

    Read whole (it is small): a delete committing meanwhile then answers 404, never a
    response cut off after its headers."""
    source, image = original_file(session, settings, image_id)
    path = storage_path(settings.storage_root, thumbnail_relative_path(image.filename))
    if not (image.has_thumbnail and path.is_file()):
        _ON_DEMAND_THUMBNAILS.run(path, lambda: _render_thumbnail(settings, image_id, source, path))
        # A read needs no lock: the worker records has_thumbnail. A delete removes the original
        # before the thumbnail, after its commit: if the original is still there now, that
        # delete (if any) is yet to remove the thumbnail just made; if it is gone, the
        # thumbnail would be left behind, so it goes now.
        if not source.exists():
            path.unlink(missing_ok=True)
            raise NotFound(f"Image {image_id} not found.")
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"Image {image_id} not found.") from exc
