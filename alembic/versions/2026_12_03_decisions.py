"""decisions: the photographer's (or the judge's) pick, stars and colour label per image in a
batch, the kind of each group, the judge's own rank beside the shown one; exposure bias and
mode per image (brackets are told from them)

Revision ID: 20261203_i20_decisions
Revises: 0007_face_sharpnesses_repair
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "20261203_i20_decisions"
down_revision: str | None = "0007_face_sharpnesses_repair"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"
_DECISION_COLUMNS = (
    ("pick", sa.String(8)),
    ("rating", sa.Integer()),
    ("color_label", sa.String(16)),
    ("decided_by", sa.String(8)),
    ("decided_at", sa.DateTime(timezone=True)),
    ("group_kind", sa.String(16)),
    ("suggested_rank", sa.Integer()),
)
_IMAGE_COLUMNS = (("exposure_bias", sa.Float()), ("exposure_mode", sa.Integer()))


def _schema() -> str | None:
    # ALTER TABLE is not translated by the engine's schema_translate_map; SQLite has no schemas.
    return None if op.get_bind().dialect.name == "sqlite" else SCHEMA


def upgrade() -> None:
    # All NULL for existing rows: no decision yet, kind and suggested rank set by the next
    # analyze or rank, exposure bias/mode unknown for images uploaded before.
    for name, kind in _DECISION_COLUMNS:
        op.add_column(
            "image_batch_association", sa.Column(name, kind, nullable=True), schema=_schema()
        )
    for name, kind in _IMAGE_COLUMNS:
        op.add_column("images", sa.Column(name, kind, nullable=True), schema=_schema())


def downgrade() -> None:
    for name, _ in reversed(_IMAGE_COLUMNS):
        op.drop_column("images", name, schema=_schema())
    for name, _ in reversed(_DECISION_COLUMNS):
        op.drop_column("image_batch_association", name, schema=_schema())
