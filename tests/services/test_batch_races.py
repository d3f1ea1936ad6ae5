"""A batch's memberships against an image deleted at the same moment (real PostgreSQL, two
transactions that commit): never a membership of a deleted image, never a 500."""

from __future__ import annotations

from collections.abc import Collection

import pytest
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.orm import Session

from crud import crud_batch
from database.database import is_sqlite
from database.models import Image, ImageBatch, ImageBatchAssociation
from services import batch_service
from services.errors import NotFound
from tests.factories import image_row


def _stored_images(engine: Engine, n: int) -> list[int]:
    with Session(engine) as session:
        images = [image_row("race", i) for i in range(n)]
        session.add_all(images)
        session.commit()
        return [image.id for image in images]


def _delete_committed(engine: Engine, image_id: int) -> None:
    """Another transaction deletes the image and commits; it gives up after 2 s of waiting for
    a lock (a batch write that locked the image first would hold it until it ends)."""
    with Session(engine) as other:
        other.execute(text("SET LOCAL lock_timeout = '2s'"))
        other.execute(delete(Image).where(Image.id == image_id))
        other.commit()


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if is_sqlite(database_url):
        pytest.skip("SQLite has one writer: no other transaction deletes during a write")


@pytest.mark.usefixtures("postgres_only")
@pytest.mark.parametrize("adding", [False, True], ids=["create", "add"])
def test_an_image_deleted_between_the_check_and_the_insert_is_404(
    clean_database: Engine, monkeypatch: pytest.MonkeyPatch, adding: bool
) -> None:
    ids = _stored_images(clean_database, 3)
    doomed = ids[1]
    batch_id = 0
    if adding:
        with Session(clean_database) as session:
            batch_id = crud_batch.create_batch(session, "existing").id
            session.commit()
    insert = crud_batch.add_members
    tries: list[int] = []

    def delete_then_insert(session: Session, batch_id: int, image_ids: Collection[int]) -> int:
        # The images were found; before their memberships are written, one is deleted.
        if not tries:
            _delete_committed(clean_database, doomed)
        tries.append(len(image_ids))
        return insert(session, batch_id, image_ids)

    def write(session: Session) -> object:
        if adding:
            return batch_service.add_images(session, batch_id, ids, ["id"])
        return batch_service.create_batch(session, "race", ids, "summary", ["id"], None)

    monkeypatch.setattr(crud_batch, "add_members", delete_then_insert)
    with Session(clean_database) as session, pytest.raises(NotFound) as raised:
        write(session)

    assert raised.value.extra == {"missing_ids": [doomed]}
    assert tries == [3]  # the retry found the image gone before inserting anything
    with Session(clean_database) as session:
        members = session.scalar(select(func.count()).select_from(ImageBatchAssociation))
        batches = session.scalars(select(ImageBatch.batch_name)).all()
    assert members == 0
    assert batches == (["existing"] if adding else [])
