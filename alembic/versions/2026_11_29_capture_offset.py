"""images.shot_at_offset_minutes: the UTC offset the camera recorded with the capture time

Revision ID: 0003_capture_offset
Revises: 0002_quality_parts
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003_capture_offset"
down_revision: str | None = "0002_quality_parts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def _schema() -> str | None:
    # ALTER TABLE is not translated by the engine's schema_translate_map on SQLite.
    return None if op.get_bind().dialect.name == "sqlite" else SCHEMA


def upgrade() -> None:
    # NULL: the camera recorded no offset (or the image predates this column).
    with op.batch_alter_table("images", schema=_schema()) as batch:
        batch.add_column(sa.Column("shot_at_offset_minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images", schema=_schema()) as batch:
        batch.drop_column("shot_at_offset_minutes")
