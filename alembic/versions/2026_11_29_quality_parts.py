"""quality parts: motion blur, brightness, faces, the judge's version; the reason for a rank

Revision ID: 0002_quality_parts
Revises: 0001_initial
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002_quality_parts"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"

IMAGE_COLUMNS = (
    ("motion_blur", sa.Float()),
    ("brightness", sa.Float()),
    ("face_count", sa.Integer()),
    ("face_sharpness", sa.Float()),
    # NULL (every image scored before this revision) means "re-score at start-up".
    ("quality_version", sa.Integer()),
)


def _schema() -> str | None:
    # The engine's schema_translate_map does not reach ALTER TABLE: SQLite has no schemas.
    return SCHEMA if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    schema = _schema()
    for name, kind in IMAGE_COLUMNS:
        op.add_column("images", sa.Column(name, kind, nullable=True), schema=schema)
    op.add_column(
        "image_batch_association",
        sa.Column("rank_reason", sa.String(32), nullable=True),
        schema=schema,
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_column("image_batch_association", "rank_reason", schema=schema)
    for name, _ in reversed(IMAGE_COLUMNS):
        op.drop_column("images", name, schema=schema)
