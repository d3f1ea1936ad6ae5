"""vector_version: one counter bumped by every transaction that changes stored vectors

The in-memory similarity index compares it with the version it was built at, so any change
(an embedding written, an image deleted, in this process or another) is seen, never guessed.

Revision ID: 0005_vector_version
Revises: 0004_camera_serial
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005_vector_version"
down_revision: str | None = "0004_camera_serial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def upgrade() -> None:
    table = op.create_table(
        "vector_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.bulk_insert(table, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("vector_version", schema=SCHEMA)
