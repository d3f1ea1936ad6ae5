"""The heavy per-image work: thumbnail, quality and embedding, from one decode of each file.

Called by the background worker with a handful of image ids at a time. No database
transaction is held while decoding or running the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Executor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session, sessionmaker

from crud import crud_image
from database import readiness
from database.models import Image
from processing.decode_gate import DecodeBusy
from processing.feature_extraction import Embedder
from processing.imaging import model_input
from processing.panorama import look_of
from processing.photo import load_oriented_rgb
from processing.quality import QUALITY_SIDE, assess_quality
from services.background.handoff import decode_shelf
from services.background.retry import is_transient
from utils.file_handling import (
    StorageLayout,
    make_thumbnail,
    storage_path,
    thumbnail_relative_path,
    write_jpeg_atomically,
)

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    image_id: int
    image_hash: str
    source: Path
    thumbnail: Path
    needs_thumbnail: bool
    needs_quality: bool
    needs_embedding: bool
    values: dict[str, Any] = field(default_factory=dict)
    wrote_thumbnail: bool = False


@dataclass(frozen=True, slots=True)
class ProcessingSummary:
    thumbnails: int = 0
    embeddings: int = 0
    failures: int = 0


def _plan(settings: StorageLayout, image: Image, model_id: str | None) -> _Job:
    return _Job(
        image_id=image.id,
        image_hash=image.image_hash,
        # Imported in place: the photographer's file where it is (services/originals.py).
        source=Path(image.source_path)
        if image.source_path
        else storage_path(settings.storage_root, image.file_path),
        thumbnail=storage_path(settings.storage_root, thumbnail_relative_path(image.filename)),
        needs_thumbnail=readiness.needs_thumbnail(image.has_thumbnail),
        needs_quality=readiness.needs_quality(image.quality_version),
        # No model loaded: no embedding to make (thumbnails and quality still are).
        needs_embedding=model_id is not None
        and readiness.lacks_embedding(image.embedding_model, model_id),
    )


def analysis_side(thumbnail_size: int, embed_side: int = 0) -> int:
    """The longest side one decode needs to serve the thumbnail, quality judge and model."""
    return max(thumbnail_size, QUALITY_SIDE, embed_side)


def _decode(settings: StorageLayout, job: _Job, embed_side: int) -> PILImage.Image:
    """Decode once, at the size every consumer of this image needs: the upload's own decode
    when it was handed on (services.background.handoff), else the file's."""
    side = max(
        settings.thumbnail_size if job.needs_thumbnail else 0,
        QUALITY_SIDE if job.needs_quality else 0,
        embed_side if job.needs_embedding else 0,
    )
    handed_on = decode_shelf().take(job.image_hash, side)
    return handed_on if handed_on is not None else load_oriented_rgb(job.source, side)


def _storage_fault(settings: StorageLayout, exc: Exception) -> bool:
    """True when reading failed because of the storage (I/O error, a mount gone), not the file.

    Pillow's decoding errors carry no errno; the system's do. A single missing file is lost
    (its image is marked failed) unless the whole images folder is gone with it."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return False
    if isinstance(exc, FileNotFoundError):
        return not settings.images_dir.is_dir()
    return True


def _thumbnail_and_quality(settings: StorageLayout, job: _Job, img: PILImage.Image) -> None:
    if job.needs_thumbnail:
        write_jpeg_atomically(make_thumbnail(img, settings.thumbnail_size), job.thumbnail)
        job.wrote_thumbnail = True
        job.values["has_thumbnail"] = True
    if job.needs_quality:
        job.values.update(assess_quality(img).columns())
        job.values["look"] = look_of(img)


def _embed(embedder: Embedder, jobs: list[_Job], images: list[PILImage.Image]) -> None:
    try:
        vectors = embedder.embed(images)
    except Exception as exc:
        if is_transient(exc):
            raise  # no model to run it just now: the batch stays queued and is tried again
        # One bad input must not cost its batch-mates their vectors: retry one by one.
        logger.exception("embedding a batch of %d failed; retrying one by one", len(jobs))
        for job, img in zip(jobs, images, strict=True):
            try:
                _store_vector(job, embedder, embedder.embed([img])[0])
            except Exception as exc:
                if is_transient(exc):
                    raise
                job.values["processing_error"] = f"embedding failed: {exc}"[:500]
        return
    for job, vector in zip(jobs, vectors, strict=True):
        _store_vector(job, embedder, vector)


def _store_vector(job: _Job, embedder: Embedder, vector: np.ndarray) -> None:
    job.values["features"] = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    job.values["embedding_model"] = embedder.model_id


@dataclass(slots=True)
class PreparedImages:
    """A batch decoded, its thumbnails written and quality judged: what the model stage needs."""

    jobs: list[_Job]
    embedder: Embedder | None
    to_embed: list[tuple[_Job, PILImage.Image]] = field(default_factory=list)


def process_images(
    session_factory: sessionmaker[Session],
    settings: StorageLayout,
    embedder: Embedder | None,
    image_ids: list[int],
) -> ProcessingSummary:
    """Make what is missing (thumbnail, quality, embedding) for these images and store it."""
    return finish_images(
        session_factory, prepare_images(session_factory, settings, embedder, image_ids)
    )


def prepare_images(
    session_factory: sessionmaker[Session],
    settings: StorageLayout,
    embedder: Embedder | None,
    image_ids: list[int],
    decode_pool: Executor | None = None,
) -> PreparedImages:
    """The decode side: decode (or take the upload's decode), thumbnail, quality, the batch's
    images spread over `decode_pool`'s threads. The inline worker runs it for the next batch
    while the model runs `finish_images` on this one."""
    model_id = embedder.model_id if embedder is not None else None
    with session_factory() as session:
        images = crud_image.get_images(session, image_ids)
        jobs = [
            _plan(settings, image, model_id) for image in images if image.processing_error is None
        ]
    jobs = [job for job in jobs if job.needs_thumbnail or job.needs_quality or job.needs_embedding]
    prepared = PreparedImages(jobs, embedder)
    embed_side = embedder.input_size if embedder is not None else 0
    with _thumbnails_kept_only_if_recorded(session_factory, jobs):
        _prepare_each(settings, prepared, embed_side, decode_pool)
    return prepared


def _prepare_each(
    settings: StorageLayout,
    prepared: PreparedImages,
    embed_side: int,
    pool: Executor | None,
) -> None:
    """Each job's decode, thumbnail and quality, on `pool`'s threads when given (Pillow,
    OpenCV and numpy release the GIL in them). Every job ends before a failure propagates, so
    the batch's clean-up sees every thumbnail written; the model's inputs keep the batch order."""
    if pool is None:
        inputs = [_prepare_one(settings, job, embed_side) for job in prepared.jobs]
    else:
        futures = [pool.submit(_prepare_one, settings, job, embed_side) for job in prepared.jobs]
        wait(futures)
        inputs = [future.result() for future in futures]
    prepared.to_embed.extend(
        (job, img) for job, img in zip(prepared.jobs, inputs, strict=True) if img is not None
    )


def _prepare_one(settings: StorageLayout, job: _Job, embed_side: int) -> PILImage.Image | None:
    """Decode, thumbnail and judge one image; its model input when it needs a vector."""
    try:
        img = _decode(settings, job, embed_side)
    except DecodeBusy:
        raise  # others hold the decode budget: the batch stays queued and is tried again
    except Exception as exc:
        if _storage_fault(settings, exc):
            raise  # not the file's fault: the batch stays queued and is tried again
        # The file itself is broken: record it, and never block its batch-mates.
        logger.warning("image %s could not be decoded: %s", job.image_id, exc)
        job.values["processing_error"] = f"could not be decoded: {exc}"[:500]
        return None
    # A failure to write the thumbnail (storage full or away) is not the image's fault:
    # it propagates, nothing is recorded, and the image stays pending for a retry.
    _thumbnail_and_quality(settings, job, img)
    return model_input(img, embed_side) if job.needs_embedding else None


def finish_images(
    session_factory: sessionmaker[Session], prepared: PreparedImages
) -> ProcessingSummary:
    """The model side: embed what needs a vector, then store everything in one transaction."""
    if not prepared.jobs:
        return ProcessingSummary()
    with _thumbnails_kept_only_if_recorded(session_factory, prepared.jobs):
        if prepared.to_embed and prepared.embedder is not None:
            jobs = [job for job, _ in prepared.to_embed]
            _embed(prepared.embedder, jobs, [img for _, img in prepared.to_embed])
        return _write_results(session_factory, prepared.jobs)


@contextmanager
def _thumbnails_kept_only_if_recorded(
    session_factory: sessionmaker[Session], jobs: list[_Job]
) -> Iterator[None]:
    """When a batch fails (the decode budget busy, storage or the database away), no thumbnail
    it wrote is recorded, and the batch is tried again later. A thumbnail written for an image
    deleted meanwhile would then be left behind for good (the retry no longer sees that image,
    and the delete removed its thumbnail before this one was written): remove those now."""
    try:
        yield
    except BaseException:
        _remove_thumbnails_of_deleted(session_factory, [job for job in jobs if job.wrote_thumbnail])
        raise


def _remove_thumbnails_of_deleted(session_factory: sessionmaker[Session], jobs: list[_Job]) -> None:
    if not jobs:
        return
    try:
        with session_factory() as session:
            alive = {
                image.id for image in crud_image.get_images(session, [j.image_id for j in jobs])
            }
    except Exception:
        # Cannot tell which were deleted: none of them is recorded, so the retry makes those
        # still alive again.
        alive = set()
    for job in jobs:
        if job.image_id not in alive:
            job.thumbnail.unlink(missing_ok=True)


def _write_results(session_factory: sessionmaker[Session], jobs: list[_Job]) -> ProcessingSummary:
    thumbnails = embeddings = failures = 0
    with session_factory() as session, session.begin():
        for job in jobs:
            if not job.values:
                continue
            if not crud_image.update_processed_image(
                session, job.image_id, made_from=job.image_hash, **job.values
            ):
                # Deleted while we worked, or its file replaced (a RAW by its JPEG): do not
                # leave its thumbnail behind.
                if job.wrote_thumbnail:
                    job.thumbnail.unlink(missing_ok=True)
                continue
            thumbnails += "has_thumbnail" in job.values
            embeddings += "features" in job.values
            failures += "processing_error" in job.values
    return ProcessingSummary(thumbnails, embeddings, failures)
