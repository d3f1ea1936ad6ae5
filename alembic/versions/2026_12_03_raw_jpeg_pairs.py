"""raw_jpeg_pairs: a RAW+JPEG pair is one image with a second (companion) file

`images.companion_*` describe the second file of a pair (processing/pairing.py says when two
files are one photo): its client file name, where it is stored (`companion_file_path` under
STORAGE_ROOT, or `companion_source_path` for an import in place, with its mtime), its SHA-256
(unique: uploading it again is a duplicate of the image), size and MIME type. All NULL for a
photo with one file. `ix_images_shot_at` serves the partner lookup by capture time.

Revision ID: 20261203_i21_raw_jpeg_pairs
Revises: 20261203_i20_focus_tiles
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "20261203_i21_raw_jpeg_pairs"
down_revision: str | None = "20261203_i20_focus_tiles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"
_COLUMNS = (
    ("companion_original_filename", sa.String(255)),
    ("companion_file_path", sa.String(255)),
    ("companion_source_path", sa.Text()),
    ("companion_source_mtime_ns", sa.BigInteger()),
    ("companion_hash", sa.String(64)),
    ("companion_size", sa.BigInteger()),
    ("companion_mime_type", sa.String(64)),
)


def _schema() -> str | None:
    # ALTER TABLE is not translated by the engine's schema_translate_map; SQLite has no schemas.
    return None if op.get_bind().dialect.name == "sqlite" else SCHEMA


def upgrade() -> None:
    for name, kind in _COLUMNS:
        op.add_column("images", sa.Column(name, kind, nullable=True), schema=_schema())
    # A unique index, not a constraint: SQLite cannot add a constraint to a table.
    op.create_index(
        "uq_images_companion_hash", "images", ["companion_hash"], unique=True, schema=SCHEMA
    )
    op.create_index("ix_images_shot_at", "images", ["shot_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_images_shot_at", table_name="images", schema=SCHEMA)
    op.drop_index("uq_images_companion_hash", table_name="images", schema=SCHEMA)
    for name, _ in reversed(_COLUMNS):
        op.drop_column("images", name, schema=_schema())
