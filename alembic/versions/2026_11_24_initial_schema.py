"""initial schema: images, image_batches, image_batch_association

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# On SQLite the engine's schema_translate_map maps this schema away.
SCHEMA = "image_clustering"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("filename", sa.String(64), nullable=False),
        sa.Column("original_filename", sa.String(255), nullable=False),
        sa.Column("file_path", sa.String(255), nullable=False),
        sa.Column("image_hash", sa.String(64), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("mime_type", sa.String(64), nullable=False),
        sa.Column("has_thumbnail", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("features", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(255), nullable=True),
        sa.Column("processing_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("orientation", sa.Integer(), nullable=True),
        sa.Column("shot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("camera_make", sa.String(255), nullable=True),
        sa.Column("camera_model", sa.String(255), nullable=True),
        sa.Column("lens_model", sa.String(255), nullable=True),
        sa.Column("focal_length", sa.String(32), nullable=True),
        sa.Column("f_number", sa.Float(), nullable=True),
        sa.Column("exposure_time", sa.String(32), nullable=True),
        sa.Column("iso", sa.Integer(), nullable=True),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("sharpness", sa.Float(), nullable=True),
        sa.Column("exposure", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.UniqueConstraint("filename", name="uq_images_filename"),
        sa.UniqueConstraint("image_hash", name="uq_images_image_hash"),
        schema=SCHEMA,
    )
    op.create_table(
        "image_batches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("batch_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("parameters", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_image_batches"),
        schema=SCHEMA,
    )
    op.create_table(
        "image_batch_association",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("group_label", sa.String(64), nullable=True),
        sa.Column("quality_rank", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            [f"{SCHEMA}.image_batches.id"],
            name="fk_image_batch_association_batch_id_image_batches",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            [f"{SCHEMA}.images.id"],
            name="fk_image_batch_association_image_id_images",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "image_id", name="pk_image_batch_association"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_image_batch_association_image_id",
        "image_batch_association",
        ["image_id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_image_batch_association_image_id", table_name="image_batch_association", schema=SCHEMA
    )
    op.drop_table("image_batch_association", schema=SCHEMA)
    op.drop_table("image_batches", schema=SCHEMA)
    op.drop_table("images", schema=SCHEMA)
