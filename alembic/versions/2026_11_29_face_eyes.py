"""face eyes: per face, are its eyes open, closed or unknown, and how sharp it is

Revision ID: 0006_face_eyes
Revises: 0005_vector_version
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006_face_eyes"
down_revision: str | None = "0005_vector_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def _schema() -> str | None:
    # The engine's schema_translate_map does not reach ALTER TABLE: SQLite has no schemas.
    return SCHEMA if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    # NULL for images judged before: QUALITY_VERSION 3 re-scores them at start-up.
    op.add_column("images", sa.Column("eyes", sa.Text(), nullable=True), schema=_schema())
    op.add_column(
        "images", sa.Column("face_sharpnesses", sa.Text(), nullable=True), schema=_schema()
    )


def downgrade() -> None:
    op.drop_column("images", "face_sharpnesses", schema=_schema())
    op.drop_column("images", "eyes", schema=_schema())
