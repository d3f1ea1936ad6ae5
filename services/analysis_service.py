"""Grouping a batch: HDBSCAN analysis, manual groups, and ranking within groups.

Manual changes and ranking lock the batch row for the length of the request's transaction.
An analysis does not: it reads the vectors in a short transaction, releases its connection,
clusters on the dedicated pool (services/clustering_pool.py), then writes the labels in a
second short transaction that locks the batch and checks that its members did not change in
between. So waiting analyses never hold connections, however many there are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy.orm import Session

from crud import crud_batch, crud_decision, crud_image
from database import readiness
from database.models import ImageBatch
from processing.grouping import (
    DEFAULT_MIN_CLUSTER_SIZE,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_TIME_GAP_SECONDS,
    Capture,
    ImageGrouper,
    camera_key,
)
from processing.sets import BRACKET, FOCUS_STACK, PANORAMA, with_brackets
from services import batch_service, ranking
from services.batch_service import GROUP_NOTES
from services.clustering_pool import ClusteringPool, SharedRows, fit_shared_labels
from services.errors import AppError, Conflict, InvalidInput, NotFound
from services.lock_conflicts import retry_on_lock_conflict
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


def _embedded_members(
    session: Session, batch_id: int, active_model: str
) -> tuple[list[Member], list[bytes], list[Member]]:
    """The batch's images that can be clustered with their vectors' bytes, and those that
    failed processing (crud_image.clustering_rows, read in chunks).

    Raises Conflict while any other image still waits for its embedding."""
    images: list[Member] = []
    features: list[bytes | None] = []
    for chunk in crud_image.clustering_rows(session, batch_id):
        for row in chunk:
            images.append(Member._make(row[:-1]))
            features.append(row[-1])
    if not images:
        raise InvalidInput(f"Batch {batch_id} has no images to analyze.")
    failed = [image for image in images if image.processing_error is not None]
    usable = [image for image in images if image.processing_error is None]
    waiting = [
        image
        for image, vector in zip(images, features, strict=True)
        if image.processing_error is None and (image.embedding_model is None or vector is None)
    ]
    if waiting:
        raise Conflict(
            f"{len(waiting)} of {len(images)} images in batch {batch_id} have no embedding "
            "yet; they are being processed. Try again shortly (see embedded_count).",
            extra={"missing_embeddings": len(waiting)},
        )
    stale = [i for i in usable if readiness.lacks_embedding(i.embedding_model, active_model)]
    if stale:
        models = sorted({str(i.embedding_model) for i in stale})
        raise Conflict(
            f"{len(stale)} images in batch {batch_id} were embedded by another model "
            f"({', '.join(models)}), not the active model {active_model}; models are never "
            "mixed. They are re-embedded in the background: try again shortly.",
            extra={"stale_embeddings": len(stale)},
        )
    vectors = [
        vector
        for image, vector in zip(images, features, strict=True)
        if image.processing_error is None and vector is not None
    ]
    return usable, vectors, failed


def _snapshot(images: Iterable[Member]) -> dict[int, tuple[str | None, bool]]:
    """What the clustering depended on: each member's embedding model and whether it failed
    (compared with crud_image.member_states before the labels are written)."""
    return {i.id: (i.embedding_model, i.processing_error is not None) for i in images}


def analyze_batch(
    session: Session,
    pool: ClusteringPool,
    batch_id: int,
    params: AnalysisParameters,
    image_columns: Sequence[str],
    view: batch_service.BatchView = "full",
) -> batch_service.BatchMembers | batch_service.BatchOverview:
    """Group the batch's images into moments (capture time, camera, looks) and rank each group;
    returns the batch page (with `image_columns` of each image), or with `view="summary"` its
    overview (counts and groups).

    Plain rows throughout, no ORM objects per image: at 50k images loading and flushing objects
    cost several times the clustering itself, and held the GIL from other requests. The
    clustering runs on `pool` (a worker process by default)."""
    gap = params.effective_time_gap
    # A place first (or 503), so that at most workers + queue batches' vectors are read at once.
    with pool.place():
        if crud_batch.get_batch(session, batch_id, with_images=False) is None:
            raise NotFound(f"Batch {batch_id} not found.")
        active_model = active_model_id(session)
        usable, features, failed = _embedded_members(session, batch_id, active_model)
        before = _snapshot([*usable, *failed])
        # End the read transaction: its connection goes back to the pool while the clustering
        # waits and runs (the rows read are plain values).
        session.rollback()
        grouper = ImageGrouper(
            min_cluster_size=params.min_cluster_size,
            min_samples=params.min_samples,
            metric=params.metric,
        )
        captures = _captures(usable)
        try:
            with SharedRows.create(features) as vectors:
                del features
                result = pool.run(fit_shared_labels, grouper, vectors, captures, gap)
        except Exception as exc:
            logger.exception("analysis of batch %s failed", batch_id)
            batch = _lock_batch(session, batch_id)
            batch.status = "failed"
            batch.error = f"Analysis failed: {exc}"[:2000]
            raise AnalysisFailed(f"Analysis of batch {batch_id} failed: {exc}") from exc

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
        "time_gap_seconds": gap,
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
    return batch_service.batch_answer(session, batch_id, view, image_columns, active_model)


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
