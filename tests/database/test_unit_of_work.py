"""The unit of work: effects noted in a transaction happen after its commit, in the stated
order, on every factory it is installed on; never after a rollback; never silently lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from crud import crud_image
from database import unit_of_work
from database.database import create_session_factory
from database.models import Image, VectorVersion
from database.vector_version import current_version
from tests.factories import image_row
from utils.file_handling import StorageUnavailable


def test_every_new_factory_gets_its_hooks(engine: Engine, tmp_path: Path) -> None:
    # Factories are created and dropped in turn, so their addresses get reused.
    for n in range(50):
        factory = sessionmaker(bind=engine)
        unit_of_work.install(factory)
        source, destination = tmp_path / f"{n}.part", tmp_path / f"{n}.jpg"
        source.write_bytes(b"x")
        with factory() as session:
            session.execute(text("SELECT 1"))
            unit_of_work.move_after_commit(session, source, destination)
            session.commit()
        assert destination.exists(), f"factory {n} did not move its file"
        del factory


def test_effects_run_in_the_stated_order(
    session_factory: sessionmaker[Session], connection: Connection, tmp_path: Path
) -> None:
    """Version bumped inside the transaction, then the upload moved into place, then the old
    file deleted, then the ids handed over (the worker finds the file there)."""
    seen: list[tuple[list[int], bool, bool, int]] = []
    unit_of_work.hand_ids_to(session_factory, lambda ids: seen.append(observe(ids)))
    source, destination, doomed = tmp_path / "a.part", tmp_path / "a.jpg", tmp_path / "old.jpg"
    source.write_bytes(b"x")
    doomed.write_bytes(b"y")

    with session_factory() as session:
        start = current_version(session)
        image = crud_image.add_image(session, image_row("u", 1))

        def observe(ids: list[int]) -> tuple[list[int], bool, bool, int]:
            version = connection.scalar(select(VectorVersion.version))
            return ids, destination.exists(), doomed.exists(), int(version or 0)

        crud_image.update_processed_image(
            session, image.id, embedding_model="m", features=b"\0" * 16
        )
        unit_of_work.move_after_commit(session, source, destination)
        unit_of_work.remove_after_commit(session, doomed)
        unit_of_work.process_after_commit(session, [image.id])
        assert (seen, source.exists(), doomed.exists()) == ([], True, True)
        session.commit()
        assert seen == [([image.id], True, False, start + 1)]
        assert not source.exists()


def test_a_rollback_forgets_everything(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    handed: list[list[int]] = []
    unit_of_work.hand_ids_to(session_factory, handed.append)
    source, kept = tmp_path / "b.part", tmp_path / "kept.jpg"
    source.write_bytes(b"x")
    kept.write_bytes(b"y")
    with session_factory() as session:
        start = current_version(session)
        image = crud_image.add_image(session, image_row("u", 2, "m"))
        unit_of_work.move_after_commit(session, source, tmp_path / "b.jpg")
        unit_of_work.remove_after_commit(session, kept)
        unit_of_work.process_after_commit(session, [image.id])
        session.rollback()
        # The next transaction of the same session carries none of it.
        session.execute(select(1))
        session.commit()
        assert current_version(session) == start
    assert handed == []
    assert not source.exists()  # the spooled upload goes
    assert kept.exists()
    assert not (tmp_path / "b.jpg").exists()


def test_a_savepoint_is_not_the_end_of_the_transaction(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    handed: list[list[int]] = []
    unit_of_work.hand_ids_to(session_factory, handed.append)
    source = tmp_path / "c.part"
    source.write_bytes(b"x")
    with session_factory() as session:
        unit_of_work.move_after_commit(session, source, tmp_path / "c.jpg")
        unit_of_work.process_after_commit(session, [7])
        with session.begin_nested() as savepoint:
            session.execute(select(1))
            savepoint.rollback()  # a lost duplicate race
        with session.begin_nested():
            session.execute(select(1))
        assert (handed, source.exists()) == ([], True)
        session.commit()
    assert handed == [[7]]
    assert (tmp_path / "c.jpg").exists()


def test_version_moves_once_per_transaction_that_changes_vectors(
    session_factory: sessionmaker[Session],
) -> None:
    unit_of_work.install(session_factory)
    with session_factory() as session:
        image = crud_image.add_image(session, image_row("u", 3))
        session.commit()
        start = current_version(session)
        crud_image.update_processed_image(session, image.id, has_thumbnail=True, rating=5)
        session.commit()
        assert current_version(session) == start
        crud_image.update_processed_image(session, image.id, embedding_model="m")
        crud_image.update_processed_image(session, image.id, features=b"\0" * 16)
        session.commit()
        assert current_version(session) == start + 1
        image.embedding_model = "n"  # through the ORM
        session.commit()
        assert current_version(session) == start + 2
        session.add(image_row("u", 4, "m"))  # a new image with a vector
        session.commit()
        assert current_version(session) == start + 3
        crud_image.delete_image(session, image)
        session.commit()
        assert current_version(session) == start + 4
        version = session.get_one(VectorVersion, 1)
        assert version.version == start + 4


def test_a_session_without_it_fails_loudly(engine: Engine, tmp_path: Path) -> None:
    plain = sessionmaker(bind=engine)
    with plain() as session:
        with pytest.raises(unit_of_work.NoUnitOfWork):
            unit_of_work.move_after_commit(session, tmp_path / "d.part", tmp_path / "d.jpg")
        with pytest.raises(unit_of_work.NoUnitOfWork):
            unit_of_work.remove_after_commit(session, tmp_path / "d.jpg")
        with pytest.raises(unit_of_work.NoUnitOfWork):
            unit_of_work.vectors_changed(session)
    # Installed, but handing ids to nobody: also refused, not dropped at commit.
    with create_session_factory(engine)() as session, pytest.raises(unit_of_work.NoUnitOfWork):
        unit_of_work.process_after_commit(session, [1])


@pytest.mark.parametrize("folder", ["a file in its place", "deleted"])
def test_a_destination_that_cannot_be_written_fails_the_commit_and_keeps_nothing(
    session_factory: sessionmaker[Session], tmp_path: Path, folder: str
) -> None:
    """Committed, the row would point at a file stranded in incoming/; refused, nothing is
    kept: no row, no spooled file."""
    unit_of_work.install(session_factory)
    if folder == "a file in its place":
        (tmp_path / "images").write_bytes(b"a file where the folder should be")
    source = tmp_path / "e.part"
    source.write_bytes(b"x")
    with session_factory() as session:
        crud_image.add_image(session, image_row("u", 5))
        unit_of_work.move_after_commit(session, source, tmp_path / "images" / "e.jpg")
        with pytest.raises(StorageUnavailable, match="'images'"):
            session.commit()
        session.rollback()
        assert session.scalar(select(Image).where(Image.filename == "u5.jpg")) is None
    assert not source.exists()
