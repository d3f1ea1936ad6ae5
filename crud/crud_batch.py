"""Small typed queries on batches and their memberships. Flush, never commit."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from database.models import ImageBatch, ImageBatchAssociation


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


def list_batches(session: Session) -> Sequence[ImageBatch]:
    query = select(ImageBatch).options(*_with_images()).order_by(ImageBatch.id)  # type: ignore[arg-type]
    return session.scalars(query).all()


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

    The database settles races: a member another transaction adds meanwhile is skipped by
    `ON CONFLICT DO NOTHING`, never a unique-key violation."""
    if not image_ids:
        return 0
    session.flush()  # pending ORM changes first: the INSERT bypasses the unit of work
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [{"batch_id": batch_id, "image_id": i} for i in sorted(set(image_ids))]
    statement = insert(ImageBatchAssociation).values(rows).on_conflict_do_nothing()
    result = session.execute(statement)
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


def renumber_group(
    session: Session, batch_id: int, group_label: str
) -> list[ImageBatchAssociation]:
    """Ranks of the group's remaining ranked members become 1..n, in their current order;
    returns them in that order, with their images loaded."""
    query = (
        select(ImageBatchAssociation)
        .where(ImageBatchAssociation.batch_id == batch_id)
        .where(ImageBatchAssociation.group_label == group_label)
        .where(ImageBatchAssociation.quality_rank.is_not(None))
        .options(selectinload(ImageBatchAssociation.image))
        .order_by(ImageBatchAssociation.quality_rank, ImageBatchAssociation.image_id)
    )
    ranked = list(session.scalars(query))
    for rank, association in enumerate(ranked, start=1):
        association.quality_rank = rank
    session.flush()
    return ranked


def delete_batch(session: Session, batch_id: int) -> None:
    session.execute(delete(ImageBatch).where(ImageBatch.id == batch_id))
