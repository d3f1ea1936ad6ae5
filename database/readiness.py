"""Where an image stands, each rule written once: the SQL expression and the row check side by
side, so a query and a loop over rows can never disagree.

- needs a thumbnail: none made yet;
- needs quality: never judged, or judged by an older version of the judge;
- embedded: its vector was made by the active model (while no model is active, e.g. still
  loading after a restart, no image counts as embedded);
- grouped: its label names a group, not "Ungrouped" (nor no label at all);
- keeper: a decision's pick where there is one (keep or reject; the photographer's, else a
  cull's: services/decision_service.py), else the judge's suggestion;
- suggested keeper (the judge's, shown beside the decision): rank 1 of a group by the judge's
  own order. An Ungrouped image is nobody's suggested keeper, whatever its rank.

Everything else (crud, the pipeline, analysis, similarity, responses, exports, /health)
imports these; a rule that does not fit is changed here.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import ColumnElement, and_, false, or_, true

from database.models import Image, ImageBatchAssociation
from processing.grouping import UNGROUPED
from processing.quality import QUALITY_VERSION

__all__ = [
    "UNGROUPED",
    "is_embedded",
    "is_embedded_sql",
    "is_grouped",
    "is_grouped_sql",
    "is_keeper",
    "is_keeper_sql",
    "is_suggested_keeper",
    "is_suggested_keeper_sql",
    "lacks_embedding",
    "lacks_embedding_sql",
    "needs_quality",
    "needs_quality_sql",
    "needs_thumbnail",
    "needs_thumbnail_sql",
]


def needs_thumbnail_sql() -> ColumnElement[bool]:
    return Image.has_thumbnail.is_(False)


def needs_thumbnail(has_thumbnail: bool) -> bool:
    return not has_thumbnail


def needs_quality_sql() -> ColumnElement[bool]:
    return Image.quality_version.is_distinct_from(QUALITY_VERSION)


def needs_quality(quality_version: int | None) -> bool:
    return quality_version != QUALITY_VERSION


def is_embedded_sql(active_model: str | None) -> ColumnElement[bool]:
    if active_model is None:
        return false()
    return Image.embedding_model == active_model


def is_embedded(embedding_model: str | None, active_model: str | None) -> bool:
    """The vector (written with its model id in one statement) is the active model's."""
    return active_model is not None and embedding_model == active_model


def lacks_embedding_sql(active_model: str | None) -> ColumnElement[bool]:
    """Not embedded (is_embedded_sql's exact negation: NULL models included)."""
    if active_model is None:
        return true()
    return Image.embedding_model.is_distinct_from(active_model)


def lacks_embedding(embedding_model: str | None, active_model: str | None) -> bool:
    return not is_embedded(embedding_model, active_model)


def is_grouped_sql() -> ColumnElement[bool]:
    label = ImageBatchAssociation.group_label
    return and_(label.is_not(None), label != UNGROUPED)


def is_grouped(group_label: str | None) -> bool:
    return group_label is not None and group_label != UNGROUPED


class Placed(Protocol):
    """A membership's place in its batch and its decision (an ImageBatchAssociation, or a row
    of its columns)."""

    @property
    def group_label(self) -> str | None: ...

    @property
    def quality_rank(self) -> int | None: ...

    @property
    def pick(self) -> str | None: ...


KEEP = "keep"


def is_keeper_sql() -> ColumnElement[bool]:
    a = ImageBatchAssociation
    return or_(a.pick == KEEP, and_(a.pick.is_(None), is_grouped_sql(), a.quality_rank == 1))


def is_keeper(member: Placed) -> bool:
    """Kept: the pick decided (by the photographer, or by a cull where they did not decide);
    undecided, rank 1 of a group. quality_rank puts the photographer's keeps first and
    rejects last (services/ranking.py), so rank 1 is the judge's best they did not reject."""
    if member.pick is not None:
        return member.pick == KEEP
    return is_grouped(member.group_label) and member.quality_rank == 1


def is_suggested_keeper_sql() -> ColumnElement[bool]:
    return and_(is_grouped_sql(), ImageBatchAssociation.suggested_rank == 1)


def is_suggested_keeper(group_label: str | None, suggested_rank: int | None) -> bool:
    """The judge's own choice (quality alone), whatever the photographer decided."""
    return is_grouped(group_label) and suggested_rank == 1
