"""camera_serial: the camera body's serial number, so grouping compares frames per body

Revision ID: 0004_camera_serial
Revises: 0003_capture_offset
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004_camera_serial"
down_revision: str | None = "0003_capture_offset"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def _schema() -> str | None:
    # ALTER TABLE is not translated by the engine's schema_translate_map; SQLite has no schemas.
    return None if op.get_bind().dialect.name == "sqlite" else SCHEMA


def upgrade() -> None:
    column = sa.Column("camera_serial", sa.String(255), nullable=True)
    op.add_column("images", column, schema=_schema())


def downgrade() -> None:
    # SQLite drops a column itself since 3.35.
    op.drop_column("images", "camera_serial", schema=_schema())
