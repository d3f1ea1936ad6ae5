"""A membership names an existing batch and an existing image, on both databases: checked per
statement on PostgreSQL (migration membership_checks), by foreign keys on SQLite. Deleting an
image or a batch deletes its memberships, however many rows one statement deletes, and a
delete racing a new membership never leaves a membership of a deleted image."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crud import crud_batch
from database.database import is_sqlite
from database.models import Image, ImageBatch, ImageBatchAssociation
from services import batch_service
from services.errors import NotFound
from tests.factories import image_row


def _images(session: Session, n: int, tag: str = "m") -> list[int]:
    images = [image_row(tag, i) for i in range(n)]
    session.add_all(images)
    session.flush()
    return [image.id for image in images]


def _committed_images(engine: Engine) -> list[int]:
    with Session(engine) as session:
        ids = _images(session, 3)
        session.commit()
    return ids


def _members(session: Session) -> list[tuple[int, int]]:
    query = select(ImageBatchAssociation.batch_id, ImageBatchAssociation.image_id)
    return sorted((b, i) for b, i in session.execute(query))


def _refused(db: Session, statement: object) -> None:
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(statement)  # type: ignore[call-overload]


def test_a_membership_of_a_missing_image_or_batch_is_refused(db: Session) -> None:
    (image_id,) = _images(db, 1)
    batch_id = crud_batch.create_batch(db, "b").id
    table = ImageBatchAssociation.__table__

    _refused(db, insert(table).values(batch_id=batch_id, image_id=image_id + 1000))
    _refused(db, insert(table).values(batch_id=batch_id + 1000, image_id=image_id))
    # Among many rows, one missing image fails the whole statement.
    rows = [{"batch_id": batch_id, "image_id": image_id}]
    _refused(db, insert(table).values([*rows, {"batch_id": batch_id, "image_id": -5}]))
    assert _members(db) == []

    db.execute(insert(table).values(rows))
    assert _members(db) == [(batch_id, image_id)]
    # Nor can a membership be moved onto a missing image.
    _refused(db, update(table).values(image_id=image_id + 1000))
    assert _members(db) == [(batch_id, image_id)]


def test_deletes_of_images_and_batches_take_their_memberships(db: Session) -> None:
    ids = _images(db, 4)
    first, second = (crud_batch.create_batch(db, name).id for name in ("a", "b"))
    crud_batch.add_members(db, first, ids)
    crud_batch.add_members(db, second, ids)

    db.execute(delete(Image).where(Image.id.in_(ids[:2])))  # one statement, two images
    assert _members(db) == [(b, i) for b in (first, second) for i in ids[2:]]
    db.execute(delete(ImageBatch).where(ImageBatch.id == first))
    assert _members(db) == [(second, i) for i in ids[2:]]
    # A membership row can still be edited (labels, ranks): only its keys are checked.
    db.execute(update(ImageBatchAssociation).values(group_label="Group 1"))
    assert db.scalar(select(func.count()).where(ImageBatchAssociation.group_label.is_(None))) == 0


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if is_sqlite(database_url):
        pytest.skip("SQLite has one writer: no two transactions write at once")


def _waiting(engine: Engine) -> int:
    """How many sessions wait for a lock."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    with Session(engine) as probe:
        return int(probe.scalar(query) or 0)


def _blocked_behind(engine: Engine, run: Callable[[], object]) -> tuple[threading.Thread, list]:
    """`run` in a thread; returns once its statement waits for a lock (pg_stat_activity)."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(run())
        except Exception as exc:  # the test reads what it raised
            outcome.append(exc)

    before = _waiting(engine)
    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _waiting(engine) > before or not thread.is_alive():
            break
        time.sleep(0.02)
    assert thread.is_alive(), f"did not wait for the lock: {outcome}"
    return thread, outcome


@pytest.mark.usefixtures("postgres_only")
def test_an_image_deleted_while_its_membership_commits_loses_the_membership(
    clean_database: Engine,
) -> None:
    ids = _committed_images(clean_database)
    with Session(clean_database) as creating:
        batch_service.create_batch(creating, "race", ids, "summary", ["id"], None)

        def delete_image() -> int:
            with Session(clean_database) as deleting:
                deleting.execute(delete(Image).where(Image.id == ids[1]))
                deleting.commit()
            return 1

        # The delete waits for the new membership's lock on the image, then takes the
        # membership (committed by then) with it.
        thread, outcome = _blocked_behind(clean_database, delete_image)
        creating.commit()
    thread.join(30)
    assert outcome == [1]
    with Session(clean_database) as session:
        assert [i for _, i in _members(session)] == [ids[0], ids[2]]


@pytest.mark.usefixtures("postgres_only")
def test_a_membership_of_an_image_being_deleted_waits_and_is_404(
    clean_database: Engine,
) -> None:
    ids = _committed_images(clean_database)
    with Session(clean_database) as deleting:
        deleting.execute(delete(Image).where(Image.id == ids[1]))

        def create() -> object:
            with Session(clean_database) as creating:
                batch_service.create_batch(creating, "race", ids, "summary", ["id"], None)
                creating.commit()
            return "created"

        # The membership's check waits for the delete's lock on the image; the delete
        # commits; the check finds the image gone, the create tries again: 404.
        thread, outcome = _blocked_behind(clean_database, create)
        deleting.commit()
    thread.join(30)
    assert len(outcome) == 1
    assert isinstance(outcome[0], NotFound), outcome
    assert outcome[0].extra == {"missing_ids": [ids[1]]}
    with Session(clean_database) as session:
        assert _members(session) == []
        assert session.scalars(select(ImageBatch.id)).all() == []


@pytest.mark.usefixtures("postgres_only")
def test_a_truncate_of_the_images_takes_the_memberships(db: Session) -> None:
    ids = _images(db, 2)
    crud_batch.add_members(db, crud_batch.create_batch(db, "b").id, ids)

    db.execute(text("TRUNCATE image_clustering.images"))
    assert _members(db) == []
