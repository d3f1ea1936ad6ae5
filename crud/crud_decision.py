"""Queries on the decisions stored on batch memberships (pick, stars, colour label, who).
Flush, never commit."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, or_, select, update
from sqlalchemy.orm import Session

from database.models import Image, ImageBatchAssociation

USER = "user"
JUDGE = "judge"
DECISION_FIELDS = ("pick", "rating", "color_label")

_A = ImageBatchAssociation


def _in_batch(batch_id: int, image_ids: Collection[int] | None) -> ColumnElement[bool]:
    where = _A.batch_id == batch_id
    return where if image_ids is None else and_(where, _A.image_id.in_(image_ids))


def user_picks(session: Session, batch_id: int) -> dict[int, str]:
    """The photographer's picks ("keep" or "reject") in the batch, by image id."""
    query = select(_A.image_id, _A.pick).where(
        _A.batch_id == batch_id, _A.decided_by == USER, _A.pick.is_not(None)
    )
    return {image_id: pick for image_id, pick in session.execute(query) if pick is not None}


def group_members(session: Session, batch_id: int, label: str) -> dict[int, str | None]:
    """The group's members with their group kind, by image id."""
    if "\x00" in label:
        # No stored label holds NUL (labels are checked), and PostgreSQL refuses it in text.
        return {}
    query = select(_A.image_id, _A.group_kind).where(
        _A.batch_id == batch_id, _A.group_label == label
    )
    return {row[0]: row[1] for row in session.execute(query)}


def group_labels(session: Session, batch_id: int) -> dict[int, str | None]:
    query = select(_A.image_id, _A.group_label).where(_A.batch_id == batch_id)
    return {row[0]: row[1] for row in session.execute(query)}


def decide(
    session: Session,
    batch_id: int,
    image_ids: Collection[int],
    values: Mapping[str, Any],
    decided_at: datetime,
) -> None:
    """A user decision on these members: the `values` given (of DECISION_FIELDS) are set, the
    others kept from an earlier user decision; a judge's decision is replaced whole."""
    stamp = {"decided_by": USER, "decided_at": decided_at}
    session.execute(
        update(_A)
        .where(_in_batch(batch_id, image_ids), _A.decided_by == USER)
        .values(**values, **stamp)
    )
    fresh = {name: values.get(name) for name in DECISION_FIELDS}
    session.execute(
        update(_A)
        .where(_in_batch(batch_id, image_ids), or_(_A.decided_by.is_(None), _A.decided_by != USER))
        .values(**fresh, **stamp)
    )
    _forget_empty(session, batch_id)


def drop_user_keeps(session: Session, batch_id: int, image_ids: Collection[int]) -> None:
    """These members are no longer kept by the user (their stars and labels stay)."""
    session.execute(
        update(_A)
        .where(_in_batch(batch_id, image_ids), _A.decided_by == USER, _A.pick == "keep")
        .values(pick=None)
    )
    _forget_empty(session, batch_id)


def clear(
    session: Session, batch_id: int, image_ids: Collection[int] | None, decided_by: str
) -> int:
    """Clear the decisions `decided_by` made on these members (all when None)."""
    result = session.execute(
        update(_A)
        .where(_in_batch(batch_id, image_ids), _A.decided_by == decided_by)
        .values(pick=None, rating=None, color_label=None, decided_by=None, decided_at=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _forget_empty(session: Session, batch_id: int) -> None:
    # A decision with nothing left in it is no decision.
    session.execute(
        update(_A)
        .where(
            _A.batch_id == batch_id,
            _A.decided_by.is_not(None),
            *(getattr(_A, name).is_(None) for name in DECISION_FIELDS),
        )
        .values(decided_by=None, decided_at=None)
    )


def judge_picks(
    session: Session, batch_id: int, keeps: Collection[int], decided_at: datetime
) -> None:
    """The judge's decision on every member without a user decision (those stay as they
    are): keep for `keeps`, reject for the rest, in one UPDATE."""
    not_user = or_(_A.decided_by.is_(None), _A.decided_by != USER)
    pick = case((_A.image_id.in_(sorted(keeps)), "keep"), else_="reject") if keeps else "reject"
    session.execute(
        update(_A)
        .where(_A.batch_id == batch_id, not_user)
        .values(pick=pick, rating=None, color_label=None, decided_by=JUDGE, decided_at=decided_at)
    )


def cull_rows(session: Session, batch_id: int) -> list[Any]:
    """Per member: image id, group label, rank, group kind, pick, decided_by, quality score."""
    query = select(
        _A.image_id,
        _A.group_label,
        _A.quality_rank,
        _A.group_kind,
        _A.pick,
        _A.decided_by,
        Image.quality_score,
    ).join(Image, Image.id == _A.image_id)
    return list(session.execute(query.where(_A.batch_id == batch_id)).all())


def group_kinds_of(session: Session, batch_id: int) -> dict[str, str]:
    """Each group's stored kind (groups ranked before kinds existed have none)."""
    query = (
        select(_A.group_label, _A.group_kind)
        .where(_A.batch_id == batch_id, _A.group_label.is_not(None), _A.group_kind.is_not(None))
        .distinct()
    )
    return {label: kind for label, kind in session.execute(query) if label and kind}
