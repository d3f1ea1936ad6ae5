"""focus tiles: each image's tile sharpness map, so a group's frames are compared tile by tile

Revision ID: 20261203_i20_focus_tiles
Revises: 20261203_i20_face_boxes
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "20261203_i20_focus_tiles"
down_revision: str | None = "20261203_i20_face_boxes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def _schema() -> str | None:
    # The engine's schema_translate_map does not reach ALTER TABLE: SQLite has no schemas.
    return SCHEMA if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    # NULL for images judged before: QUALITY_VERSION 6 re-scores them at start-up.
    op.add_column("images", sa.Column("focus_tiles", sa.JSON(), nullable=True), schema=_schema())


def downgrade() -> None:
    op.drop_column("images", "focus_tiles", schema=_schema())
