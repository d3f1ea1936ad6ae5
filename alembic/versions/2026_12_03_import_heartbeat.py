"""import heartbeat and runner: when an import's process last showed it was alive, which run it is

Revision ID: 20261203_import_heartbeat
Revises: 20261203_i22_image_count
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "20261203_import_heartbeat"
down_revision: str | None = "20261203_i22_image_count"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"


def _schema() -> str | None:
    # The engine's schema_translate_map does not reach ALTER TABLE: SQLite has no schemas.
    return SCHEMA if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    # NULL for imports recorded before: an unfinished one counts as stale (resumed at start-up).
    op.add_column(
        "imports",
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        schema=_schema(),
    )
    op.add_column("imports", sa.Column("runner", sa.String(32), nullable=True), schema=_schema())


def downgrade() -> None:
    op.drop_column("imports", "runner", schema=_schema())
    op.drop_column("imports", "heartbeat_at", schema=_schema())
