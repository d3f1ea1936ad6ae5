"""Queries for the fitted judge: the photographer's choices it learns from, and its one row.
Flush, never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from crud.crud_decision import USER
from crud.crud_image import JUDGED_COLUMNS
from crud.single_row import replace_row
from database.models import Image, ImageBatchAssociation, JudgeProfile
from database.readiness import is_grouped_sql
from processing.sets import KEPT_WHOLE

_A = ImageBatchAssociation
PROFILE_ID = 1


def choice_rows(session: Session) -> list[Any]:
    """Every member of each group (of one keeper, not a set kept whole: a bracket, a focus
    stack) in which the photographer kept or rejected a frame: batch id, group label, the
    user's pick (None when the decision is not theirs) and the image's parts; by batch, group
    and image."""
    chosen = (
        select(_A.batch_id, _A.group_label)
        .where(_A.decided_by == USER, _A.pick.is_not(None), is_grouped_sql())
        .distinct()
        .subquery()
    )
    query = (
        select(_A.batch_id, _A.group_label, _A.pick, _A.decided_by, *JUDGED_COLUMNS)
        .join(Image, Image.id == _A.image_id)
        .join(
            chosen, and_(chosen.c.batch_id == _A.batch_id, chosen.c.group_label == _A.group_label)
        )
        .where(or_(_A.group_kind.is_(None), _A.group_kind.not_in(KEPT_WHOLE)))
        .order_by(_A.batch_id, _A.group_label, _A.image_id)
    )
    return list(session.execute(query).all())


def ranked_groups(session: Session) -> dict[int, set[str]]:
    """The labels of the groups of one keeper in every batch, by batch id."""
    query = (
        select(_A.batch_id, _A.group_label)
        .where(is_grouped_sql(), or_(_A.group_kind.is_(None), _A.group_kind.not_in(KEPT_WHOLE)))
        .distinct()
    )
    groups: dict[int, set[str]] = {}
    for batch_id, label in session.execute(query):
        if label is not None:
            groups.setdefault(batch_id, set()).add(label)
    return groups


def profile(session: Session) -> JudgeProfile | None:
    query = select(JudgeProfile).where(JudgeProfile.id == PROFILE_ID)
    return session.scalar(query.execution_options(populate_existing=True))


def fitted_weights(session: Session) -> dict[str, float] | None:
    """The weights ranking uses: the fitted ones when the library opted in and they held up
    on held-back choices; None for the default judge."""
    query = select(JudgeProfile.weights).where(
        JudgeProfile.id == PROFILE_ID, JudgeProfile.in_use == "fitted"
    )
    return session.execute(query).scalar_one_or_none()


def save_profile(session: Session, values: dict[str, Any], fitted_at: datetime) -> None:
    """Insert or replace the row (one statement: two fits at once both succeed, the last
    one wins)."""
    replace_row(session, JudgeProfile, values | {"id": PROFILE_ID, "fitted_at": fitted_at})


def delete_profile(session: Session) -> bool:
    result = session.execute(delete(JudgeProfile).where(JudgeProfile.id == PROFILE_ID))
    return bool(result.rowcount)  # type: ignore[attr-defined]
