"""Migrations: landed ones never change, the chain is linear, and it runs up, down, up again.

Each test of the schema builds its own throw-away database, on PostgreSQL and on SQLite,
whatever DATABASE_URL the rest of the run uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from alembic import command
from database.database import SCHEMA, create_db_engine, is_sqlite
from database.migrations import PROJECT_ROOT, alembic_config
from database.models import Base
from scripts import migration_manifest as manifest
from tests import scratch_db
from tests.conftest import DEFAULT_POSTGRES_URL

REPAIRED_REVISION = "0006_face_eyes"  # edited after landing by cc6647a (added face_sharpnesses)


def test_the_landed_migrations_are_unchanged() -> None:
    problems = manifest.check(manifest.read_manifest(), manifest.migrations_on_disk())
    assert not problems, "\n".join(problems)


def test_the_chain_is_linear_with_one_head() -> None:
    scripts = ScriptDirectory(str(PROJECT_ROOT / "alembic"))
    assert len(scripts.get_heads()) == 1, scripts.get_heads()
    # In the manifest each migration revises the one listed just before it.
    entries = manifest.read_manifest()
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.parents == (before.revision,), after.line()


def test_the_manifest_on_main_is_a_prefix_of_this_one() -> None:
    """What landed on main stays listed as it was: lines are only ever appended."""
    shown = subprocess.run(
        ["git", "show", "main:alembic/manifest.txt"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        pytest.skip(f"no manifest on a branch named main here: {shown.stderr.strip()}")
    on_main = [line for line in shown.stdout.splitlines() if line and not line.startswith("#")]
    here = [line.strip() for line in manifest.MANIFEST.read_text().splitlines()]
    here = [line for line in here if line and not line.startswith("#")]
    assert here[: len(on_main)] == on_main, "alembic/manifest.txt: lines landed on main changed"


@pytest.fixture
def alembic_copy(tmp_path: Path) -> Path:
    """A copy of alembic/ (migrations and manifest) to break on purpose."""
    copy = tmp_path / "alembic"
    shutil.copytree(PROJECT_ROOT / "alembic", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _run_manifest(alembic_dir: Path, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(PROJECT_ROOT / ".venv" / "bin" / "python"),
            "-m",
            "scripts.migration_manifest",
            action,
            "--alembic-dir",
            str(alembic_dir),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_edited_landed_migration_fails_the_check(alembic_copy: Path) -> None:
    edited = next((alembic_copy / "versions").glob("*_face_eyes.py"))
    edited.write_text(edited.read_text() + "\n# a column added after landing\n")

    result = _run_manifest(alembic_copy, "--check")

    assert result.returncode == 1
    assert f"landed migration {REPAIRED_REVISION} ({edited.name}) was edited" in result.stderr
    assert "make the change in a NEW migration" in result.stderr


def test_append_refuses_to_rewrite_a_landed_line(alembic_copy: Path) -> None:
    before = (alembic_copy / "manifest.txt").read_text()
    edited = next((alembic_copy / "versions").glob("*_face_eyes.py"))
    edited.write_text(edited.read_text().replace("how sharp it is", "how sharp"))

    result = _run_manifest(alembic_copy, "--append")

    assert result.returncode == 1, result.stdout
    assert "was edited" in result.stderr
    assert (alembic_copy / "manifest.txt").read_text() == before


def test_append_lists_a_new_migration_after_the_others(alembic_copy: Path) -> None:
    before = (alembic_copy / "manifest.txt").read_text()
    head = manifest.read_manifest(alembic_copy / "manifest.txt")[-1].revision
    new = alembic_copy / "versions" / "2099_01_01_example.py"
    new.write_text(
        f'"""example"""\nrevision = "9999_example"\ndown_revision = "{head}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    assert _run_manifest(alembic_copy, "--check").returncode == 1  # not listed yet

    result = _run_manifest(alembic_copy, "--append")

    assert result.returncode == 0, result.stderr
    after = (alembic_copy / "manifest.txt").read_text()
    assert after.startswith(before)
    added = after[len(before) :].splitlines()
    assert len(added) == 1
    assert added[0].split()[:3] == ["9999_example", head, new.name]
    assert _run_manifest(alembic_copy, "--check").returncode == 0


def test_a_second_head_is_refused(alembic_copy: Path) -> None:
    first = manifest.read_manifest(alembic_copy / "manifest.txt")[0].revision
    (alembic_copy / "versions" / "2099_01_01_branch.py").write_text(
        f'"""branch"""\nrevision = "9999_branch"\ndown_revision = "{first}"\n'
        "branch_labels = None\ndepends_on = None\n"
    )

    result = _run_manifest(alembic_copy, "--append")

    assert result.returncode == 1
    assert "2 heads" in result.stderr


# The schema itself, on both databases.


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    server = make_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    name = scratch_db.scratch_name()
    try:
        url = scratch_db.create_database(server, name, patience=0)
    except OperationalError as error:
        pytest.skip(f"no PostgreSQL server to test the migrations on: {error}")
    try:
        yield url
    finally:
        scratch_db.drop_database(server, name)


def _schema_of(url: str) -> str | None:
    return None if is_sqlite(url) else SCHEMA


def _tables(url: str) -> dict[str, set[str]]:
    engine = create_db_engine(url)
    try:
        inspector = inspect(engine)
        schema = _schema_of(url)
        return {
            table: {column["name"] for column in inspector.get_columns(table, schema=schema)}
            for table in inspector.get_table_names(schema=schema)
            if table != "alembic_version"
        }
    finally:
        engine.dispose()


def _models() -> dict[str, set[str]]:
    return {
        table.name: {column.name for column in table.columns}
        for table in Base.metadata.sorted_tables
    }


def test_up_down_up(empty_database: str) -> None:
    config = alembic_config(empty_database)

    command.upgrade(config, "head")
    assert _tables(empty_database) == _models()

    command.downgrade(config, "base")
    assert _tables(empty_database) == {}

    command.upgrade(config, "head")
    assert _tables(empty_database) == _models()


def test_a_database_from_the_first_face_eyes_gets_face_sharpnesses(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, REPAIRED_REVISION)
    # What the first version of 0006_face_eyes left: eyes, but no face_sharpnesses.
    engine = create_db_engine(empty_database)
    table = "images" if is_sqlite(empty_database) else f"{SCHEMA}.images"
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} DROP COLUMN face_sharpnesses"))
    engine.dispose()
    assert "face_sharpnesses" not in _tables(empty_database)["images"]

    command.upgrade(config, "head")

    assert _tables(empty_database)["images"] == _models()["images"]


def test_images_stored_before_pair_stems_get_theirs(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "20261203_import_heartbeat")
    engine = create_db_engine(empty_database)
    table = "images" if is_sqlite(empty_database) else f"{SCHEMA}.images"
    names = ["IMG_0001.CR2", "img_0001.jpg", "no extension", "Été.2.HEIC"]
    with engine.begin() as conn:
        for n, name in enumerate(names):
            conn.execute(
                text(
                    f"INSERT INTO {table} (filename, original_filename, file_path, image_hash, "
                    "file_size, mime_type, has_thumbnail) "
                    "VALUES (:f, :o, :p, :h, 1, 'image/jpeg', false)"
                ),
                {"f": f"{n}.jpg", "o": name, "p": f"images/{n}.jpg", "h": f"{n:064x}"},
            )

    command.upgrade(config, "head")

    with engine.connect() as conn:
        stems = conn.execute(text(f"SELECT pair_stem FROM {table} ORDER BY id")).scalars().all()
    engine.dispose()
    assert stems == ["img_0001", "img_0001", "no extension", "été.2"]
