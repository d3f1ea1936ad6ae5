"""active_model: the embedding model the process that embeds loaded, published by it

Before, the API worked out the id it expected from its own settings and could disagree with
the worker (int8 decided from the configured device, not the resolved one). Empty until a
writer loads a model: an existing database upgrades by creating the table, and the next
start of the server (inline) or of a Celery worker fills it.

Revision ID: 0008_active_model
Revises: 20261203_i20_decisions
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008_active_model"
down_revision: str | None = "20261203_i20_decisions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def upgrade() -> None:
    op.create_table(
        "active_model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=True),
        sa.Column("configured_model", sa.String(255), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("fallback_reason", sa.Text(), nullable=True),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_active_model"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("active_model", schema=SCHEMA)
