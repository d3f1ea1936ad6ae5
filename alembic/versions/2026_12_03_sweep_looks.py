"""sweep looks: each image's tiny grey copy (panorama sweeps) and its EXIF focus distance

`images.look` is processing.panorama.look_of of the decoded picture (48 x 48 grey bytes),
written when the image is judged; neighbours' looks are phase-correlated to tell a panorama
sweep. `images.focus_distance` is the distance focused at, in metres (EXIF SubjectDistance),
used to tell a focus stack. Both NULL for images processed before.

Revision ID: 20261203_i20_sweep_looks
Revises: 20261203_i21_pair_stems
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "20261203_i20_sweep_looks"
down_revision: str | None = "20261203_i21_pair_stems"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def _schema() -> str | None:
    # The engine's schema_translate_map does not reach ALTER TABLE: SQLite has no schemas.
    return SCHEMA if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    op.add_column("images", sa.Column("look", sa.LargeBinary(), nullable=True), schema=_schema())
    op.add_column(
        "images", sa.Column("focus_distance", sa.Float(), nullable=True), schema=_schema()
    )


def downgrade() -> None:
    op.drop_column("images", "focus_distance", schema=_schema())
    op.drop_column("images", "look", schema=_schema())
