"""face boxes: each face's box, eyes and sharpnesses, and the eyes' own sharpness

Revision ID: 20261203_i20_face_boxes
Revises: 0009_imports_in_place
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "20261203_i20_face_boxes"
down_revision: str | None = "0009_imports_in_place"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def _schema() -> str | None:
    # The engine's schema_translate_map does not reach ALTER TABLE: SQLite has no schemas.
    return SCHEMA if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    # NULL for images judged before: QUALITY_VERSION 4 re-scores them at start-up.
    op.add_column("images", sa.Column("eye_sharpness", sa.Float(), nullable=True), schema=_schema())
    op.add_column("images", sa.Column("faces", sa.JSON(), nullable=True), schema=_schema())


def downgrade() -> None:
    op.drop_column("images", "faces", schema=_schema())
    op.drop_column("images", "eye_sharpness", schema=_schema())
