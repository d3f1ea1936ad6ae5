"""The photographer decides: picks, stars and colour labels, a group's keeper, and a cull to a
target that the judge fills in around the photographer's own decisions.

A user decision is never overwritten by analyze, rank or cull; the judge's suggestion
(`suggested_rank`) stays beside it. Ranks put the photographer's keeps first and rejects last
(services/ranking.py), so each change here ranks the groups it touched again.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from crud import crud_batch, crud_decision
from database import readiness
from database.models import ImageBatch
from processing.sets import KEPT_WHOLE
from services import batch_service, ranking
from services.errors import NotFound


def _lock_batch(session: Session, batch_id: int) -> ImageBatch:
    batch = crud_batch.get_batch_for_update(session, batch_id)
    if batch is None:
        raise NotFound(f"Batch {batch_id} not found.")
    return batch


def _labels_of(
    session: Session, batch_id: int, image_ids: Collection[int] | None
) -> dict[int, str | None]:
    """The members' labels by image id; NotFound when some image is not in the batch."""
    labels = crud_decision.group_labels(session, batch_id)
    if image_ids is not None:
        missing = set(image_ids) - labels.keys()
        if missing:
            raise NotFound(
                f"Images not in batch {batch_id}.", extra={"missing_ids": sorted(missing)}
            )
        labels = {i: labels[i] for i in image_ids}
    return labels


def _rerank(session: Session, batch_id: int, labels: Mapping[int, str | None]) -> None:
    groups = {
        label for label in labels.values() if label is not None and readiness.is_grouped(label)
    }
    if groups:
        ranking.rerank_groups(session, batch_id, groups)


def set_decisions(
    session: Session,
    batch_id: int,
    image_ids: Collection[int],
    values: Mapping[str, Any],
    image_columns: Sequence[str],
) -> batch_service.BatchMembers:
    """The photographer's decision on these images: the fields in `values` (pick, rating,
    color_label) set, the others as they were; ranks follow the picks."""
    _lock_batch(session, batch_id)
    labels = _labels_of(session, batch_id, image_ids)
    crud_decision.decide(session, batch_id, image_ids, values, datetime.now(UTC))
    if "pick" in values:
        _rerank(session, batch_id, labels)
    session.flush()
    return batch_service.batch_page(session, batch_id, image_columns)


def clear_decisions(
    session: Session,
    batch_id: int,
    image_ids: Collection[int] | None,
    image_columns: Sequence[str],
) -> batch_service.BatchMembers:
    """Forget the photographer's decisions on these images (all of the batch when None)."""
    _lock_batch(session, batch_id)
    labels = _labels_of(session, batch_id, image_ids)
    crud_decision.clear(session, batch_id, image_ids, crud_decision.USER)
    _rerank(session, batch_id, labels)
    session.flush()
    return batch_service.batch_page(session, batch_id, image_columns)


def choose_keeper(
    session: Session, batch_id: int, group_label: str, image_id: int, image_columns: Sequence[str]
) -> batch_service.BatchMembers:
    """The photographer's keeper of a group: kept by the user, rank 1, the group's other
    members no longer kept by the user (their stars, labels and rejects stay)."""
    _lock_batch(session, batch_id)
    members = crud_decision.group_members(session, batch_id, group_label)
    if not members or not readiness.is_grouped(group_label):
        raise NotFound(f"Batch {batch_id} has no group {group_label!r}.")
    if image_id not in members:
        raise NotFound(f"Image {image_id} is not in group {group_label!r} of batch {batch_id}.")
    others = [i for i in members if i != image_id]
    crud_decision.drop_user_keeps(session, batch_id, others)
    crud_decision.decide(session, batch_id, [image_id], {"pick": "keep"}, datetime.now(UTC))
    ranking.rerank_groups(session, batch_id, [group_label])
    session.flush()
    return batch_service.batch_page(session, batch_id, image_columns)


@dataclass(frozen=True, slots=True)
class CullResult:
    """The selects of a cull: every image kept (by the user or the judge), in batch order."""

    batch_id: int
    target: int
    selected: list[int]
    judge_selected: int
    user_kept: int
    user_rejected: int
    groups: int
    groups_covered: int


@dataclass(slots=True)
class _Unit:
    """What a cull selects at once: one frame, or a whole bracket."""

    ids: list[int]
    score: float
    moment_best: bool  # the best frame of its group (or an Ungrouped frame): picked first
    label: str | None


def cull(
    session: Session,
    batch_id: int,
    share: float | None,
    count: int | None,
    at_least_one_per_group: bool,
) -> CullResult:
    """Keep `count` images (or `share` of the batch): the photographer's keeps first, then the
    best frame of each moment, then the best of the rest; brackets whole. With
    `at_least_one_per_group` every group keeps one image even past the target. Stored as judge
    decisions (keep for selects, reject for the rest); user decisions stay as they are."""
    _lock_batch(session, batch_id)
    rows = crud_decision.cull_rows(session, batch_id)
    total = len(rows)
    target = count if count is not None else math.floor((share or 0.0) * total + 0.5)
    target = min(target, total)
    user = {row.image_id: row.pick for row in rows if row.decided_by == crud_decision.USER}
    kept = [i for i, pick in user.items() if pick == "keep"]
    rejected = {i for i, pick in user.items() if pick == "reject"}
    units = _units([row for row in rows if row.image_id not in user])
    chosen: dict[int, _Unit] = {}  # by id(unit)
    size = len(kept)
    groups = {row.group_label for row in rows if readiness.is_grouped(row.group_label)}
    covered = {row.group_label for row in rows if row.image_id in kept}
    if at_least_one_per_group:
        for unit in units:  # best first: each group's first unit is its best
            if unit.label in groups and unit.label not in covered:
                chosen[id(unit)] = unit
                covered.add(unit.label)
                size += len(unit.ids)
    for unit in units:
        if size >= target:
            break
        if id(unit) not in chosen and size + len(unit.ids) <= max(target, size + 1):
            chosen[id(unit)] = unit
            covered.add(unit.label)
            size += len(unit.ids)
    selects = {i for unit in chosen.values() for i in unit.ids}
    crud_decision.judge_picks(session, batch_id, selects, datetime.now(UTC))
    session.flush()
    selected = set(kept) | selects
    return CullResult(
        batch_id=batch_id,
        target=target,
        selected=[row.image_id for row in _in_order(rows) if row.image_id in selected],
        judge_selected=len(selects),
        user_kept=len(kept),
        user_rejected=len(rejected),
        groups=len(groups),
        groups_covered=len(covered & groups),
    )


def _units(rows: Sequence[Any]) -> list[_Unit]:
    """The undecided members as units, best first: each moment's best frame by score, then
    the other frames by score."""
    units: list[_Unit] = []
    brackets: dict[str, _Unit] = {}
    for row in rows:
        score = row.quality_score if row.quality_score is not None else -1.0
        if row.group_kind in KEPT_WHOLE and row.group_label is not None:
            unit = brackets.get(row.group_label)
            if unit is None:
                unit = brackets[row.group_label] = _Unit([], score, True, row.group_label)
                units.append(unit)
            unit.ids.append(row.image_id)
            unit.score = max(unit.score, score)
            continue
        best = not readiness.is_grouped(row.group_label) or row.quality_rank == 1
        units.append(_Unit([row.image_id], score, best, row.group_label))
    units.sort(key=lambda u: (not u.moment_best, -u.score, min(u.ids)))
    return units


def _in_order(rows: Sequence[Any]) -> list[Any]:
    return sorted(
        rows, key=lambda r: batch_service.member_order(r.group_label, r.quality_rank, r.image_id)
    )
