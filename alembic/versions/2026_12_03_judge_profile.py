"""judge_profile: the judge's weights fitted to the photographer's keeper choices and rejects

One row while the library has opted in (POST /judge/fit); none: the default judge, as before.
An existing database upgrades by creating the empty table.

Revision ID: 20261203_i20_judge_profile
Revises: 20261203_i21_raw_jpeg_pairs
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "20261203_i20_judge_profile"
down_revision: str | None = "20261203_i21_raw_jpeg_pairs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def upgrade() -> None:
    op.create_table(
        "judge_profile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("in_use", sa.String(16), nullable=False),
        sa.Column("groups", sa.Integer(), nullable=False),
        sa.Column("pairs", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_judge_profile"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("judge_profile", schema=SCHEMA)
