"""Grouping a batch: HDBSCAN analysis, manual groups, and ranking within groups.

Manual changes and ranking lock the batch row for the length of the request's transaction.
An analysis runs on the analysis pool (services/clustering_pool.py: a worker process by
default), whole: the request checks cheaply that the batch can be analysed (a count per
embedding state, no vector read) and sends the job; the worker reads the vectors in a short
transaction of its own, clusters, then ranks and writes the labels in a second short
transaction that locks the batch and checks that its members did not change in between, and
encodes the answer, whose bytes the request relays. So waiting analyses never hold
connections, however many there are, and the server's process never holds the rows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from crud import crud_batch, crud_decision, crud_image
from database import readiness
from database.models import ImageBatch
from processing.grouping import (
    DEFAULT_MIN_CLUSTER_SIZE,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_TIME_GAP_SECONDS,
    Capture,
    GroupingResult,
    ImageGrouper,
    camera_key,
)
from processing.sets import BRACKET, FOCUS_STACK, PANORAMA, with_brackets
from services import batch_service, ranking
from services.batch_service import GROUP_NOTES
from services.clustering_pool import ClusteringPool, WorkerDatabase
from services.errors import AppError, Conflict, InvalidInput, NotFound, Unavailable
from services.lock_conflicts import conflict_error, is_lock_conflict, retry_on_lock_conflict
from services.model_identity import active_model_id

logger = logging.getLogger(__name__)


class AnalysisFailed(AppError):
    """Clustering itself failed. The batch is marked failed, and that change is kept."""

    status_code = 500
    keeps_changes = True


@dataclass(frozen=True, slots=True)
class AnalysisParameters:
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE
    min_samples: int = DEFAULT_MIN_SAMPLES
    metric: Literal["cosine", "euclidean"] = "cosine"
    time_gap_seconds: float | None = None  # None: DEFAULT_TIME_GAP_SECONDS
    use_capture_time: bool = True

    @property
    def effective_time_gap(self) -> float | None:
        """The gap grouping uses; None when capture time is turned off."""
        if not self.use_capture_time:
            return None
        return self.time_gap_seconds or DEFAULT_TIME_GAP_SECONDS


def _captures(images: Sequence[Any]) -> list[Capture]:
    return [
        Capture(i.shot_at, camera_key(i.camera_make, i.camera_model, i.camera_serial))
        for i in images
    ]


def _lock_batch(session: Session, batch_id: int) -> ImageBatch:
    batch = crud_batch.get_batch_for_update(session, batch_id)
    if batch is None:
        raise NotFound(f"Batch {batch_id} not found.")
    return batch


class Member(NamedTuple):
    """What an analysis reads of each member besides its vector."""

    id: int
    embedding_model: str | None
    processing_error: str | None
    shot_at: datetime | None
    camera_make: str | None
    camera_model: str | None
    camera_serial: str | None


def _require_ready(
    batch_id: int, states: Iterable[crud_image.EmbeddingState], active_model: str
) -> None:
    """InvalidInput for a batch without images; Conflict while any image that did not fail
    still waits for its vector, or has one from another model than the active one."""
    states = list(states)
    total = sum(state.members for state in states)
    if not total:
        raise InvalidInput(f"Batch {batch_id} has no images to analyze.")
    usable = [state for state in states if not state.failed]
    waiting = sum(s.members for s in usable if s.embedding_model is None or not s.has_vector)
    if waiting:
        raise Conflict(
            f"{waiting} of {total} images in batch {batch_id} have no embedding "
            "yet; they are being processed. Try again shortly (see embedded_count).",
            extra={"missing_embeddings": waiting},
        )
    stale = [s for s in usable if readiness.lacks_embedding(s.embedding_model, active_model)]
    if stale:
        models = sorted({str(s.embedding_model) for s in stale})
        raise Conflict(
            f"{sum(s.members for s in stale)} images in batch {batch_id} were embedded by "
            f"another model ({', '.join(models)}), not the active model {active_model}; models "
            "are never mixed. They are re-embedded in the background: try again shortly.",
            extra={"stale_embeddings": sum(s.members for s in stale)},
        )


def _embedded_members(
    session: Session, batch_id: int, active_model: str
) -> tuple[list[Member], list[bytes], list[Member]]:
    """The batch's images that can be clustered with their vectors' bytes, and those that
    failed processing. The same checks as the request's (_require_ready), on the rows
    read: images may have changed since."""
    images: list[Member] = []
    features: list[bytes | None] = []
    for row in crud_image.clustering_rows(session, batch_id):
        images.append(Member._make(row[:-1]))
        features.append(row[-1])
    counts = Counter(
        (i.embedding_model, i.processing_error is not None, vector is not None)
        for i, vector in zip(images, features, strict=True)
    )
    _require_ready(
        batch_id,
        (crud_image.EmbeddingState(*state, n) for state, n in counts.items()),
        active_model,
    )
    usable = [image for image in images if image.processing_error is None]
    failed = [image for image in images if image.processing_error is not None]
    vectors = [
        vector
        for image, vector in zip(images, features, strict=True)
        if image.processing_error is None and vector is not None
    ]
    return usable, vectors, failed


def _matrix(vectors: Sequence[bytes]) -> NDArray[np.float32]:
    """The vectors (each the bytes of a float32 vector) as the rows of one matrix."""
    width = len(vectors[0]) // 4 if vectors else 0
    if any(len(vector) != width * 4 for vector in vectors):
        raise ValueError("the vectors do not all have the same length")
    # A bytearray: the matrix is writable, as the grouper may need.
    return np.frombuffer(bytearray().join(vectors), dtype=np.float32).reshape(len(vectors), width)


def _snapshot(images: Iterable[Member]) -> dict[int, tuple[str | None, bool]]:
    """What the clustering depended on: each member's embedding model and whether it failed
    (compared with crud_image.member_states before the labels are written)."""
    return {i.id: (i.embedding_model, i.processing_error is not None) for i in images}


class EncodedAnswer(NamedTuple):
    """An answer's JSON bytes and its headers (made where the analysis ran)."""

    body: bytes
    headers: dict[str, str]


# Encodes the batch answer (the page or the overview) as the active model's: the API's
# presenter, handed down as a plain function (it pickles by name into a worker process).
Render = Callable[[batch_service.BatchMembers | batch_service.BatchOverview, str], EncodedAnswer]


@dataclass(frozen=True, slots=True)
class AnalysisJob:
    """What the request sends to the worker: plain values, the grouper and the answer's
    encoder."""

    batch_id: int
    params: AnalysisParameters
    grouper: ImageGrouper
    image_columns: tuple[str, ...]
    view: batch_service.BatchView
    render: Render


def analyze_batch(
    session: Session,
    pool: ClusteringPool,
    batch_id: int,
    params: AnalysisParameters,
    image_columns: Sequence[str],
    view: batch_service.BatchView,
    render: Render,
) -> EncodedAnswer:
    """Group the batch's images into moments (capture time, camera, looks) and rank each group;
    returns the batch page (with `image_columns` of each image), or with `view="summary"` its
    overview (counts and groups), as `render` encodes it.

    Here only the cheap checks (404, 503 while no model is active, 400, 409 while embeddings
    are missing or stale); the analysis itself runs on `pool` (run_analysis)."""
    # A place first (or 503), so that at most workers + queue batches' vectors are read at once.
    with pool.place():
        if crud_batch.get_batch(session, batch_id, with_images=False) is None:
            raise NotFound(f"Batch {batch_id} not found.")
        active_model = active_model_id(session)
        _require_ready(batch_id, crud_image.embedding_states(session, batch_id), active_model)
        # End the request's transaction: its connection goes back to the pool while the
        # analysis waits and runs.
        session.rollback()
        grouper = ImageGrouper(
            min_cluster_size=params.min_cluster_size,
            min_samples=params.min_samples,
            metric=params.metric,
        )
        job = AnalysisJob(batch_id, params, grouper, tuple(image_columns), view, render)
        return pool.run_with_database(run_analysis, job)


def run_analysis(database: WorkerDatabase, job: AnalysisJob) -> EncodedAnswer:
    """The whole analysis, on the pool's worker with its own sessions; the database's faults
    come back as the errors the API answers with (503, 409), plain to pickle."""
    try:
        return _analysis(database, job)
    except SQLAlchemyError as exc:
        if is_lock_conflict(exc):
            raise conflict_error() from None
        if isinstance(exc, PoolTimeout):
            raise Unavailable(
                "The server is busy (every database connection is in use); try again shortly."
            ) from None
        if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
            logger.warning("analysis of batch %s: database unavailable: %s", job.batch_id, exc)
            raise Unavailable("The database is unavailable; try again shortly.") from None
        raise


def _analysis(database: WorkerDatabase, job: AnalysisJob) -> EncodedAnswer:
    batch_id, params = job.batch_id, job.params
    gap = params.effective_time_gap
    with database.read() as session:
        if crud_batch.get_batch(session, batch_id, with_images=False) is None:
            raise NotFound(f"Batch {batch_id} not found.")
        active_model = active_model_id(session)
        usable, vectors, failed = _embedded_members(session, batch_id, active_model)
        before = _snapshot([*usable, *failed])
    try:
        matrix = _matrix(vectors)
        del vectors
        result = database.cluster(job.grouper.fit_labels, matrix, _captures(usable), gap)
    except Exception as exc:
        logger.exception("analysis of batch %s failed", batch_id)
        with database.write() as session, session.begin():
            batch = crud_batch.get_batch_for_update(session, batch_id)
            if batch is not None:
                batch.status = "failed"
                batch.error = f"Analysis failed: {exc}"[:2000]
        raise AnalysisFailed(f"Analysis of batch {batch_id} failed: {exc}") from None
    del matrix
    with database.write() as session:
        with session.begin():
            _store(session, job, usable, failed, before, result, active_model)
            answer = batch_service.batch_answer(
                session, batch_id, job.view, job.image_columns, active_model
            )
        # Encoded once committed: the batch's lock is not held for it.
        return job.render(answer, active_model)


def _store(
    session: Session,
    job: AnalysisJob,
    usable: Sequence[Member],
    failed: Sequence[Member],
    before: Mapping[int, tuple[str | None, bool]],
    result: GroupingResult,
    active_model: str,
) -> None:
    """Rank the groups and store the labels and the analysis's parameters, under the batch's
    lock, if the members are still those clustered (else Conflict, nothing written)."""
    batch_id, params = job.batch_id, job.params
    batch = _lock_batch(session, batch_id)
    if crud_image.member_states(session, batch_id) != before:
        raise Conflict(
            f"Batch {batch_id} changed while it was being analysed (images added, removed or "
            "re-embedded); analyze it again."
        )
    names = result.labels
    labels = {image.id: label for image, label in zip(usable, names, strict=True)}
    labels.update({image.id: readiness.UNGROUPED for image in failed})
    grouped = _members_by_label(labels)
    # Brackets are told from EXIF and sweeps from EXIF and neighbours' overlap, whatever the
    # grouping made of them: each becomes a group kept whole; a group whose sharp region (or
    # EXIF focus distance) moves from frame to frame is a focus stack, kept whole too.
    labels, kinds = with_brackets(labels, *ranking.batch_frames(session, batch_id))
    ranking.rank_labelled(session, batch_id, labels, kinds)
    # Notes only on the groups brackets left as the grouping made them.
    kept = {label for label, ids in _members_by_label(labels).items() if grouped.get(label) == ids}
    notes = [
        {
            "label": label,
            "cohesion": round(note.cohesion, 4),
            "may_hold_moments": note.may_hold_moments,
            "split_before_image_id": (
                None if note.split_before_row is None else usable[note.split_before_row].id
            ),
        }
        for label, note in result.notes.items()
        if label in kept
    ]
    parameters: dict[str, Any] = {
        "min_cluster_size": params.min_cluster_size,
        "min_samples": params.min_samples,
        "metric": params.metric,
        "time_gap_seconds": params.effective_time_gap,
        "use_capture_time": params.use_capture_time,
        "embedding_model": active_model,
        "groups": len({label for label in labels.values() if readiness.is_grouped(label)}),
        "brackets": sum(kind == BRACKET for kind in kinds.values()),
        "focus_stacks": sum(kind == FOCUS_STACK for kind in kinds.values()),
        "panoramas": sum(kind == PANORAMA for kind in kinds.values()),
        "single_cluster_fallback": result.used_single_cluster_fallback,
        # How sure each group is (processing.grouping.GroupNote); the batch page's `groups`.
        GROUP_NOTES: notes,
    }
    batch.status, batch.error, batch.parameters = "complete", None, parameters
    session.flush()


def _members_by_label(labels: Mapping[int, str]) -> dict[str, set[int]]:
    members: dict[str, set[int]] = {}
    for image_id, label in labels.items():
        members.setdefault(label, set()).add(image_id)
    return members


@retry_on_lock_conflict
def update_groups(
    session: Session, batch_id: int, group_map: Mapping[str, list[int]]
) -> ImageBatch:
    """Replace the batch's grouping by hand; the map must name each member exactly once."""
    _lock_batch(session, batch_id)
    batch = batch_service.get_batch(session, batch_id)
    members = {a.image_id for a in batch.image_associations}
    labels: dict[int, str] = {}
    repeated: set[int] = set()
    for label, image_ids in group_map.items():
        for image_id in image_ids:
            if image_id in labels:
                repeated.add(image_id)
            labels[image_id] = label
    missing, unknown = members - labels.keys(), labels.keys() - members
    if missing or unknown or repeated:
        problems = [
            f"{name}: {sorted(ids)}"
            for name, ids in (
                ("images of the batch missing from the map", missing),
                ("images not in the batch", unknown),
                ("images listed more than once", repeated),
            )
            if ids
        ]
        raise InvalidInput(
            "group_map must list each image of the batch exactly once; " + "; ".join(problems)
        )
    ranking.rank_labelled(session, batch_id, labels, None)
    batch.status, batch.error = "complete", None
    if batch.parameters and GROUP_NOTES in batch.parameters:
        batch.parameters = {k: v for k, v in batch.parameters.items() if k != GROUP_NOTES}
    session.flush()
    return batch_service.get_batch(session, batch_id)


@retry_on_lock_conflict
def rank_group(session: Session, batch_id: int, group_label: str) -> ImageBatch:
    """Re-rank one group by quality; rank 1 is the suggested keeper."""
    _lock_batch(session, batch_id)
    labels = {
        image_id: label
        for image_id, label in crud_decision.group_labels(session, batch_id).items()
        if label == group_label
    }
    if not labels:
        raise NotFound(f"Batch {batch_id} has no group {group_label!r}.")
    ranking.rank_labelled(session, batch_id, labels, None)
    session.flush()
    return batch_service.get_batch(session, batch_id)
