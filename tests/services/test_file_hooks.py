"""Files that follow the transaction, on every session factory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from utils.file_handling import install_file_hooks, move_after_commit


def test_every_new_factory_gets_its_hooks(engine: Engine, tmp_path: Path) -> None:
    # Factories are created and dropped in turn, so their addresses get reused.
    for n in range(50):
        factory = sessionmaker(bind=engine)
        install_file_hooks(factory)
        source, destination = tmp_path / f"{n}.part", tmp_path / f"{n}.jpg"
        source.write_bytes(b"x")
        with factory() as session:
            session.execute(text("SELECT 1"))
            move_after_commit(session, source, destination)
            session.commit()
        assert destination.exists(), f"factory {n} did not move its file"
        del factory
