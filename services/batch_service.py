"""Batches: creating, listing, membership. (Grouping lives in analysis_service.)"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from crud import crud_batch, crud_image
from database import readiness
from database.models import ImageBatch, ImageBatchAssociation
from database.readiness import UNGROUPED
from services import image_service
from services.errors import NotFound
from services.image_service import IncomingUpload, UploadReport, UploadSettings
from services.lock_conflicts import retry_on_lock_conflict, retry_on_lost_race

PREVIEW_IMAGES = 4  # image ids a batch summary shows (the list's covers)
# The key of the analysis parameters holding each group's cohesion and candidate split; a
# manual regrouping (analysis_service.update_groups) removes it, since its groups are gone.
GROUP_NOTES = "group_notes"
_GROUP_NUMBER = re.compile(r"^Group (\d+)$")


def association_order(association: ImageBatchAssociation) -> tuple[int, int, str, int, int]:
    """Sort key: "Group 1", "Group 2", ... "Group 10", other labels, "Ungrouped", unlabelled;
    then quality_rank (unranked last); then image id."""
    return member_order(association.group_label, association.quality_rank, association.image_id)


def member_order(
    label: str | None, rank: int | None, image_id: int
) -> tuple[int, int, str, int, int]:
    """The sort key of association_order, from the values."""
    bucket, number, text = _label_order(label)
    return (bucket, number, text, rank if rank is not None else 1 << 30, image_id)


@functools.lru_cache(maxsize=4096)
def _label_order(label: str | None) -> tuple[int, int, str]:
    # Cached: a batch has few distinct labels and thousands of members to sort.
    match = _GROUP_NUMBER.match(label or "")
    if match:
        return 0, int(match.group(1)), label or ""
    if label is None:
        return 3, 0, ""
    return (2 if label == UNGROUPED else 1), 0, label


def _sorted(batch: ImageBatch) -> ImageBatch:
    batch.image_associations.sort(key=association_order)
    return batch


def _existing_images(session: Session, image_ids: Collection[int]) -> dict[int, str | None]:
    """The images must exist; returns each one's embedding model. Not locked: inserting their
    memberships locks them (the membership check, a foreign key on SQLite), and one deleted
    between this read and that insert fails the insert, whose retry (retry_on_lost_race)
    then answers 404."""
    models = crud_image.image_models(session, image_ids)
    missing = set(image_ids) - models.keys()
    if missing:
        raise NotFound("One or more image IDs not found.", extra={"missing_ids": sorted(missing)})
    return models


def _lock_batch(session: Session, batch_id: int) -> None:
    """The batch must exist; every change to its memberships or groups holds its row lock
    (taken before any image lock: the lock order of services/lock_conflicts.py)."""
    if crud_batch.get_batch_for_update(session, batch_id) is None:
        raise NotFound(f"Batch {batch_id} not found.")


def get_batch(session: Session, batch_id: int) -> ImageBatch:
    batch = crud_batch.get_batch(session, batch_id)
    if batch is None:
        raise NotFound(f"Batch {batch_id} not found.")
    return _sorted(batch)


def _require_batch(session: Session, batch_id: int) -> None:
    if crud_batch.get_batch(session, batch_id, with_images=False) is None:
        raise NotFound(f"Batch {batch_id} not found.")


@dataclass(frozen=True, slots=True)
class BatchMembers:
    """A batch and its memberships in page order, as tuples
    (*crud_batch.MEMBER_FIELDS, *values of the image `columns`)."""

    batch: ImageBatch
    columns: list[str]
    members: list[tuple[Any, ...]]


def _pages(
    session: Session, batches: Sequence[ImageBatch], image_columns: Sequence[str]
) -> list[BatchMembers]:
    columns, rows = crud_batch.member_rows(session, [b.id for b in batches], image_columns)
    image_id = 1 + len(crud_batch.MEMBER_FIELDS)  # rows: batch_id, *MEMBER_FIELDS, id, ...
    rows.sort(key=lambda row: member_order(row[1], row[2], row[image_id]))
    members: dict[int, list[tuple[Any, ...]]] = {b.id: [] for b in batches}
    for row in rows:
        members[row[0]].append(row[1:])
    return [BatchMembers(batch, columns, members[batch.id]) for batch in batches]


@dataclass(frozen=True, slots=True)
class BatchSummary:
    batch: ImageBatch
    image_count: int
    embedded_count: int
    preview_image_ids: list[int]


def _previews(session: Session, batch_ids: list[int]) -> dict[int, list[int]]:
    """The first PREVIEW_IMAGES image ids of each batch in page order: the groups that come
    first are chosen from the group sizes, then only their first members are read."""
    groups: dict[int, list[tuple[str | None, int]]] = {}
    for batch_id, label, size in crud_batch.label_counts(session, batch_ids):
        groups.setdefault(batch_id, []).append((label, size))
    wanted: set[tuple[int, str | None]] = set()
    for batch_id, sizes in groups.items():
        taken = 0
        for label, size in sorted(sizes, key=lambda item: _label_order(item[0])):
            wanted.add((batch_id, label))
            taken += size
            if taken >= PREVIEW_IMAGES:
                break
    labels = {label for _, label in wanted}
    rows = crud_batch.first_members(session, batch_ids, labels, PREVIEW_IMAGES) if wanted else []
    rows = sorted((r for r in rows if (r[0], r[1]) in wanted), key=lambda r: member_order(*r[1:]))
    previews: dict[int, list[int]] = {}
    for batch_id, _label, _rank, image_id in rows:
        chosen = previews.setdefault(batch_id, [])
        if len(chosen) < PREVIEW_IMAGES:
            chosen.append(image_id)
    return previews


def batch_summaries(
    session: Session, active_model: str | None, offset: int = 0, limit: int | None = None
) -> tuple[list[BatchSummary], int]:
    """A page of batches with their counts and first few image ids in page order (five
    queries, whatever the sizes; the database counts, only a few rows reach Python)."""
    batches = crud_batch.list_batch_rows(session, offset, limit)
    ids = [b.id for b in batches]
    counts = crud_batch.member_counts(session, ids, active_model)
    previews = _previews(session, ids)
    summaries = [
        BatchSummary(batch, *counts.get(batch.id, (0, 0)), previews.get(batch.id, []))
        for batch in batches
    ]
    return summaries, crud_batch.count_batches(session)


@dataclass(frozen=True, slots=True)
class BatchOverview:
    """A batch without its memberships: its counts, covers and group sizes in page order, and
    the label each image named by `split_ids` has now (where it is still a member)."""

    summary: BatchSummary
    group_sizes: dict[str, int]
    labels_of: dict[int, str | None]


# What a batch answer holds: every membership, or counts and groups only.
BatchView = Literal["full", "summary"]


def split_ids(parameters: Mapping[str, Any] | None) -> set[int]:
    """The images the analysis's notes name as a candidate split (GROUP_NOTES)."""
    notes = (parameters or {}).get(GROUP_NOTES) or []
    return {
        split
        for note in notes
        if isinstance(note, dict) and isinstance(split := note.get("split_before_image_id"), int)
    }


def batch_overview(session: Session, batch_id: int, active_model: str | None) -> BatchOverview:
    """The batch's counts, covers and group sizes (six queries; the database counts: a
    100k-image batch answers in kilobytes, not the 46 MB of its page)."""
    batch = crud_batch.get_batch_row(session, batch_id)
    if batch is None:
        raise NotFound(f"Batch {batch_id} not found.")
    counts = crud_batch.member_counts(session, [batch_id], active_model)
    sizes = [(label, size) for _, label, size in crud_batch.label_counts(session, [batch_id])]
    summary = BatchSummary(
        batch, *counts.get(batch_id, (0, 0)), _previews(session, [batch_id]).get(batch_id, [])
    )
    group_sizes = {
        label: size
        for label, size in sorted(sizes, key=lambda item: _label_order(item[0]))
        if readiness.is_grouped(label)
    }
    labels_of = crud_batch.labels_of(session, batch_id, split_ids(batch.parameters))
    return BatchOverview(summary, group_sizes, labels_of)


def batch_page(session: Session, batch_id: int, image_columns: Sequence[str]) -> BatchMembers:
    """One batch with its memberships in page order, read as plain rows (two queries)."""
    batch = crud_batch.get_batch_row(session, batch_id)
    if batch is None:
        raise NotFound(f"Batch {batch_id} not found.")
    return _pages(session, [batch], image_columns)[0]


def batch_pages(
    session: Session, image_columns: Sequence[str], offset: int = 0, limit: int | None = None
) -> tuple[list[BatchMembers], int]:
    """A page of batches (by id) with their memberships, and how many batches there are
    (three queries, whatever the number of batches or images)."""
    batches = crud_batch.list_batch_rows(session, offset, limit)
    return _pages(session, batches, image_columns), crud_batch.count_batches(session)


def batch_answer(
    session: Session,
    batch_id: int,
    view: BatchView,
    image_columns: Sequence[str],
    active_model: str | None,
) -> BatchMembers | BatchOverview:
    """The batch's page (`full`) or its overview (`summary`)."""
    if view == "summary":
        return batch_overview(session, batch_id, active_model)
    return batch_page(session, batch_id, image_columns)


@retry_on_lost_race
def create_batch(
    session: Session,
    name: str,
    image_ids: Collection[int],
    view: BatchView,
    image_columns: Sequence[str],
    active_model: str | None,
) -> BatchMembers | BatchOverview:
    """A new batch of existing images (set-based: no row object per image), as `view` asks."""
    models = _existing_images(session, image_ids)
    batch = crud_batch.create_batch(session, name)
    crud_batch.add_members(session, batch.id, image_ids)
    if view == "full":
        return batch_page(session, batch.id, image_columns)
    return _new_batch_overview(batch, models, active_model)


def _new_batch_overview(
    batch: ImageBatch, models: Mapping[int, str | None], active_model: str | None
) -> BatchOverview:
    """batch_overview of a batch just made of these images (their embedding models), known
    without reading it back (its four queries over 100k members took ~1 s): no labels, no
    ranks, so page order is image id order, and no groups."""
    embedded = sum(readiness.is_embedded(model, active_model) for model in models.values())
    covers = sorted(models)[:PREVIEW_IMAGES]
    return BatchOverview(BatchSummary(batch, len(models), embedded, covers), {}, {})


@retry_on_lock_conflict
def rename_batch(session: Session, batch_id: int, name: str) -> ImageBatch:
    _lock_batch(session, batch_id)
    batch = get_batch(session, batch_id)
    batch.batch_name = name
    session.flush()
    return batch


@retry_on_lock_conflict
def delete_batch(session: Session, batch_id: int) -> None:
    """Delete the batch and its memberships; the images stay."""
    _lock_batch(session, batch_id)
    crud_batch.delete_batch(session, batch_id)


@retry_on_lost_race
def add_images(
    session: Session, batch_id: int, image_ids: Collection[int], image_columns: Sequence[str]
) -> BatchMembers:
    """Add images; members already in the batch keep their labels. Answers the batch's page
    as plain rows (100k members read back as ORM objects took 4.7 s)."""
    _lock_batch(session, batch_id)
    _existing_images(session, image_ids)
    crud_batch.add_members(session, batch_id, image_ids)
    return batch_page(session, batch_id, image_columns)


@retry_on_lock_conflict
def remove_images(session: Session, batch_id: int, image_ids: Collection[int]) -> ImageBatch:
    """Remove images from the batch; the others keep their labels, the images stay stored.
    A group that loses its keeper gets the next one, under the batch's lock."""
    _lock_batch(session, batch_id)
    groups = {g for g in crud_batch.ranked_groups_of(session, image_ids) if g[0] == batch_id}
    crud_batch.remove_members(session, batch_id, image_ids)
    image_service.promote_next_keepers(session, groups)
    return get_batch(session, batch_id)


def upload_to_batch(
    session: Session, settings: UploadSettings, batch_id: int, uploads: list[IncomingUpload]
) -> tuple[ImageBatch, UploadReport]:
    """Upload files and add them to the batch: new images and duplicates alike."""
    _require_batch(session, batch_id)
    report = image_service.upload_images(session, settings, uploads)
    # Locked after the upload's own locks (by hash): batch, then images, as everywhere. A
    # duplicate deleted meanwhile is not added (its row is gone); the batch deleted: 404.
    _lock_batch(session, batch_id)
    ids = [result.image.id for result in report.accepted]
    crud_batch.add_members(session, batch_id, crud_image.lock_images_for_share(session, ids))
    return get_batch(session, batch_id), report
