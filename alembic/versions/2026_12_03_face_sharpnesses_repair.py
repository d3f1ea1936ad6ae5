"""face_sharpnesses repair: add images.face_sharpnesses where the first 0006_face_eyes ran

Commit cc6647a edited the landed 0006_face_eyes to add face_sharpnesses instead of adding a
migration, so a database that ran the first version is at 0006 without the column. This adds it
when it is missing and does nothing otherwise.

Revision ID: 0007_face_sharpnesses_repair
Revises: 0006_face_eyes
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007_face_sharpnesses_repair"
down_revision: str | None = "0006_face_eyes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def _schema() -> str | None:
    # The engine's schema_translate_map does not reach ALTER TABLE: SQLite has no schemas.
    return SCHEMA if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    columns = sa.inspect(op.get_bind()).get_columns("images", schema=_schema())
    if "face_sharpnesses" not in {column["name"] for column in columns}:
        op.add_column(
            "images", sa.Column("face_sharpnesses", sa.Text(), nullable=True), schema=_schema()
        )


def downgrade() -> None:
    # The column belongs to 0006_face_eyes as it stands today; its downgrade drops it.
    pass
