"""Small typed queries on batches and their memberships. Flush, never commit."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.types import TypeEngine

from crud.crud_image import id_list, image_column_names
from database import readiness
from database.models import Image, ImageBatch, ImageBatchAssociation


def _with_images() -> tuple[object, ...]:
    # Two extra SELECTs whatever the number of batches or images: no N+1.
    return (selectinload(ImageBatch.image_associations).selectinload(ImageBatchAssociation.image),)


def get_batch(session: Session, batch_id: int, *, with_images: bool = True) -> ImageBatch | None:
    query = select(ImageBatch).where(ImageBatch.id == batch_id)
    if with_images:
        # populate_existing: memberships changed in this session are read back as stored.
        query = query.options(*_with_images()).execution_options(populate_existing=True)  # type: ignore[arg-type]
    return session.scalars(query).one_or_none()


def get_batch_for_update(session: Session, batch_id: int) -> ImageBatch | None:
    """The batch row, locked until the transaction ends (serialises work on one batch)."""
    query = select(ImageBatch).where(ImageBatch.id == batch_id).with_for_update()
    return session.scalars(query).one_or_none()


def lock_batches(session: Session, batch_ids: Collection[int]) -> set[int]:
    """Of these ids, those of existing batches, locked (in id order: writers that lock several
    batches cannot deadlock on each other) until the transaction ends."""
    if not batch_ids:
        return set()
    query = (
        select(ImageBatch.id)
        .where(ImageBatch.id.in_(batch_ids))
        .order_by(ImageBatch.id)
        .with_for_update()
    )
    return set(session.scalars(query))


def batches_of_image(session: Session, image_id: int) -> set[int]:
    """The ids of the batches the image belongs to."""
    query = select(ImageBatchAssociation.batch_id).where(ImageBatchAssociation.image_id == image_id)
    return set(session.scalars(query))


def get_batch_row(session: Session, batch_id: int) -> ImageBatch | None:
    """The batch alone (its memberships come from member_rows)."""
    return session.scalars(select(ImageBatch).where(ImageBatch.id == batch_id)).one_or_none()


def list_batch_rows(
    session: Session, offset: int = 0, limit: int | None = None
) -> Sequence[ImageBatch]:
    query = select(ImageBatch).order_by(ImageBatch.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query).all()


def count_batches(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ImageBatch)) or 0


# What a member row carries from its association, before the image's values.
MEMBER_FIELDS = (
    "group_label",
    "quality_rank",
    "rank_reason",
    "suggested_rank",
    "group_kind",
    "pick",
    "rating",
    "color_label",
    "decided_by",
    "decided_at",
)


def member_rows(
    session: Session, batch_ids: Collection[int], image_columns: Sequence[str]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The batches' memberships as plain rows (batch_id, *MEMBER_FIELDS, *image values), in one
    query and without ORM objects: a 5,000-image page is read in milliseconds.
    Returns the image columns read ("id" first; names that are not columns are skipped)."""
    table = Image.__table__
    names = image_column_names(image_columns)
    query = select(
        ImageBatchAssociation.batch_id,
        *(getattr(ImageBatchAssociation, name) for name in MEMBER_FIELDS),
        *(table.c[name] for name in names),
    ).join(Image, Image.id == ImageBatchAssociation.image_id)
    query = query.where(ImageBatchAssociation.batch_id.in_(batch_ids))
    # On the Core connection: Session.execute would wrap every row for the ORM.
    return names, list(session.connection().execute(query).all())


def member_counts(
    session: Session, batch_ids: Collection[int], active_model: str | None
) -> dict[int, tuple[int, int]]:
    """Per batch: how many images, and how many embedded by `active_model` (readiness)."""
    embedded = readiness.is_embedded_sql(active_model)
    query = (
        select(ImageBatchAssociation.batch_id, func.count(), func.count().filter(embedded))
        .join(Image, Image.id == ImageBatchAssociation.image_id)
        .where(ImageBatchAssociation.batch_id.in_(batch_ids))
        .group_by(ImageBatchAssociation.batch_id)
    )
    return {row[0]: (row[1], row[2]) for row in session.connection().execute(query)}


def label_counts(session: Session, batch_ids: Collection[int]) -> list[tuple[Any, ...]]:
    """(batch_id, group_label, members) for each group of the batches."""
    a = ImageBatchAssociation
    query = (
        select(a.batch_id, a.group_label, func.count())
        .where(a.batch_id.in_(batch_ids))
        .group_by(a.batch_id, a.group_label)
    )
    return list(session.connection().execute(query).all())


def labels_of(session: Session, batch_id: int, image_ids: Collection[int]) -> dict[int, str | None]:
    """The group label of each of these images that is a member of the batch."""
    if not image_ids:
        return {}
    a = ImageBatchAssociation
    query = select(a.image_id, a.group_label).where(
        a.batch_id == batch_id, a.image_id.in_(image_ids)
    )
    return {row[0]: row[1] for row in session.connection().execute(query)}


def first_members(
    session: Session, batch_ids: Collection[int], labels: Collection[str | None], count: int
) -> list[tuple[Any, ...]]:
    """(batch_id, group_label, quality_rank, image_id) of the first `count` members of each
    of these groups, by rank (unranked last) then id."""
    a = ImageBatchAssociation
    named = [label for label in labels if label is not None]
    in_labels: ColumnElement[bool] = a.group_label.in_(named)
    if None in labels:
        in_labels = or_(in_labels, a.group_label.is_(None))
    position = (
        func.row_number()
        .over(
            partition_by=(a.batch_id, a.group_label),
            order_by=(func.coalesce(a.quality_rank, 1 << 30), a.image_id),
        )
        .label("position")
    )
    ranked = (
        select(a.batch_id, a.group_label, a.quality_rank, a.image_id, position)
        .where(a.batch_id.in_(batch_ids), in_labels)
        .subquery()
    )
    query = select(
        ranked.c.batch_id, ranked.c.group_label, ranked.c.quality_rank, ranked.c.image_id
    ).where(ranked.c.position <= count)
    return list(session.connection().execute(query).all())


def create_batch(session: Session, name: str) -> ImageBatch:
    batch = ImageBatch(batch_name=name, status="pending")
    session.add(batch)
    session.flush()
    return batch


def member_ids(session: Session, batch_id: int) -> set[int]:
    query = select(ImageBatchAssociation.image_id).where(ImageBatchAssociation.batch_id == batch_id)
    return set(session.scalars(query))


def add_members(session: Session, batch_id: int, image_ids: Collection[int]) -> int:
    """Add the images not already in the batch; returns how many were added.

    One INSERT ... SELECT over the ids bound as one value (crud_image.id_list): 100k members in
    a few hundred ms, no row objects. The database settles races: a member another transaction
    adds meanwhile is skipped by `ON CONFLICT DO NOTHING`, never a unique-key violation."""
    if not image_ids:
        return 0
    session.flush()  # pending ORM changes first: the INSERT bypasses the unit of work
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    ids = id_list(session, image_ids)
    # WHERE true: SQLite would read ON CONFLICT after a bare SELECT as a join's ON.
    rows = select(literal(batch_id, Integer), ids.c.value).where(true())
    statement = insert(ImageBatchAssociation).from_select(["batch_id", "image_id"], rows)
    result = session.execute(statement.on_conflict_do_nothing())
    return max(int(result.rowcount), 0)  # type: ignore[attr-defined]


def remove_members(session: Session, batch_id: int, image_ids: Collection[int]) -> int:
    result = session.execute(
        delete(ImageBatchAssociation)
        .where(ImageBatchAssociation.batch_id == batch_id)
        .where(ImageBatchAssociation.image_id.in_(image_ids))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def ranked_groups_of(session: Session, image_ids: Collection[int]) -> set[tuple[int, str]]:
    """(batch id, group label) of every ranked group these images belong to."""
    query = (
        select(ImageBatchAssociation.batch_id, ImageBatchAssociation.group_label)
        .where(ImageBatchAssociation.image_id.in_(image_ids))
        .where(ImageBatchAssociation.group_label.is_not(None))
        .where(ImageBatchAssociation.quality_rank.is_not(None))
    )
    return {(batch_id, label) for batch_id, label in session.execute(query) if label is not None}


class MemberRank(NamedTuple):
    """What ranking sets on a membership."""

    group_label: str
    quality_rank: int
    rank_reason: str | None
    suggested_rank: int
    group_kind: str | None


def set_member_labels(session: Session, batch_id: int, labels: Mapping[int, MemberRank]) -> None:
    """Set each member's label, ranks, reason and group kind, by image id, no ORM objects.

    PostgreSQL: one UPDATE ... FROM unnest(arrays), 50k rows in one statement (executemany
    took 4 s for 50k rows). SQLite: one UPDATE statement executed for every row (in-process,
    no round trips)."""
    items = list(labels.items())
    if session.get_bind().dialect.name != "postgresql":
        rows = [
            {"batch_id": batch_id, "image_id": image_id, **ranked._asdict()}
            for image_id, ranked in items
        ]
        if rows:
            session.execute(update(ImageBatchAssociation), rows)
        return
    if not items:
        return
    a = ImageBatchAssociation.__table__
    assert isinstance(a, Table)
    types = (String, Integer, String, Integer, String)
    values = (
        func.unnest(
            _array([image_id for image_id, _ in items], Integer),
            *(_array([ranked[at] for _, ranked in items], kind) for at, kind in enumerate(types)),
        )
        .table_valued("image_id", *MemberRank._fields)
        .render_derived()
    )
    session.execute(
        update(a)
        .where(a.c.batch_id == batch_id, a.c.image_id == values.c.image_id)
        .values({name: values.c[name] for name in MemberRank._fields})
    )


def _array(values: list[Any], item_type: type[TypeEngine[Any]]) -> BindParameter[Any]:
    return bindparam(None, values, type_=postgresql.ARRAY(item_type), unique=True)


def delete_batch(session: Session, batch_id: int) -> None:
    session.execute(delete(ImageBatch).where(ImageBatch.id == batch_id))
