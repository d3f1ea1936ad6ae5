"""pair_stems: the file-name stem a RAW+JPEG partner is looked up by, indexed

`images.pair_stem` is processing.pairing.pair_stem(original_filename) (the name without its
extension, case folded), filled for the rows there are and set on every insert by the model.
Looking a partner up by capture time alone scanned up to 14 h of a shoot per stored file
(bench/results/pair_lookup.txt); by stem it reads the few rows of that name.

Revision ID: 20261203_i21_pair_stems
Revises: 20261203_import_heartbeat
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from pathlib import PurePath

import sqlalchemy as sa

from alembic import op

revision: str = "20261203_i21_pair_stems"
down_revision: str | None = "20261203_import_heartbeat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"
_CHUNK = 5000


def _schema() -> str | None:
    # ALTER TABLE is not translated by the engine's schema_translate_map; SQLite has no schemas.
    return None if op.get_bind().dialect.name == "sqlite" else SCHEMA


def upgrade() -> None:
    op.add_column("images", sa.Column("pair_stem", sa.String(255), nullable=True), schema=_schema())
    images = sa.table(
        "images",
        sa.column("id", sa.Integer()),
        sa.column("original_filename", sa.String()),
        sa.column("pair_stem", sa.String()),
        schema=_schema(),
    )
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(images.c.id, images.c.original_filename)
            .where(images.c.id > last)
            .order_by(images.c.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            break
        # The rule of processing.pairing.pair_stem, written out: a migration never changes.
        values = [{"row_id": i, "stem": PurePath(name).stem.casefold()[:255]} for i, name in rows]
        bind.execute(
            images.update()
            .where(images.c.id == sa.bindparam("row_id"))
            .values(pair_stem=sa.bindparam("stem")),
            values,
        )
        last = rows[-1][0]
    op.create_index("ix_images_pair_stem", "images", ["pair_stem"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_images_pair_stem", table_name="images", schema=SCHEMA)
    op.drop_column("images", "pair_stem", schema=_schema())
