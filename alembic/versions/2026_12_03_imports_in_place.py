"""imports_in_place: folders imported where they are (no copy), and where each such image's
original lives

`images.source_path` is the absolute path of an original imported in place (NULL for uploads,
whose original is `file_path` under STORAGE_ROOT); `source_mtime_ns` is its modification time
when it was hashed, so a file changed since is told. `imports` records each import's folder,
batch and progress.

Revision ID: 0009_imports_in_place
Revises: 0008_active_model
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009_imports_in_place"
down_revision: str | None = "0008_active_model"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"
_IMAGE_COLUMNS = (("source_path", sa.Text()), ("source_mtime_ns", sa.BigInteger()))


def _schema() -> str | None:
    # ALTER TABLE is not translated by the engine's schema_translate_map; SQLite has no schemas.
    return None if op.get_bind().dialect.name == "sqlite" else SCHEMA


def upgrade() -> None:
    for name, kind in _IMAGE_COLUMNS:
        op.add_column("images", sa.Column(name, kind, nullable=True), schema=_schema())
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("found", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_imports"),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            [f"{SCHEMA}.image_batches.id"],
            name="fk_imports_batch_id_image_batches",
            ondelete="SET NULL",
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("imports", schema=SCHEMA)
    for name, _ in reversed(_IMAGE_COLUMNS):
        op.drop_column("images", name, schema=_schema())
