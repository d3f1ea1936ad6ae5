"""SQLAlchemy 2.0 typed models for schema `image_clustering`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from processing.capture_time import offset_text, wall_clock
from processing.pairing import pair_stem

SCHEMA = "image_clustering"
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware on every database: stored as UTC, read back as UTC (SQLite has no
    time zones and would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _pair_stem_of_row(context: Any) -> str:
    return pair_stem(context.get_current_parameters()["original_filename"])[:255]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION, schema=SCHEMA)


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(64), unique=True)
    original_filename: Mapped[str] = mapped_column(String(255))
    file_path: Mapped[str] = mapped_column(String(255))
    image_hash: Mapped[str] = mapped_column(String(64), unique=True)
    file_size: Mapped[int] = mapped_column(Integer)
    mime_type: Mapped[str] = mapped_column(String(64))
    has_thumbnail: Mapped[bool] = mapped_column(default=False)
    # float32 bytes; deferred so listing images never drags the vectors along.
    features: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    embedding_model: Mapped[str | None] = mapped_column(String(255))
    processing_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.now()
    )

    # Metadata (EXIF)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    orientation: Mapped[int | None] = mapped_column(Integer)
    shot_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # The UTC offset the camera recorded with shot_at; None: it recorded none (processing/
    # capture_time.py says how the two read as the photographer's wall-clock time).
    shot_at_offset_minutes: Mapped[int | None] = mapped_column(Integer)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    camera_make: Mapped[str | None] = mapped_column(String(255))
    camera_model: Mapped[str | None] = mapped_column(String(255))
    # Tells two bodies of one model apart (grouping compares frames per camera).
    camera_serial: Mapped[str | None] = mapped_column(String(255))
    lens_model: Mapped[str | None] = mapped_column(String(255))
    focal_length: Mapped[str | None] = mapped_column(String(32))
    f_number: Mapped[float | None] = mapped_column(Float)
    exposure_time: Mapped[str | None] = mapped_column(String(32))
    iso: Mapped[int | None] = mapped_column(Integer)
    caption: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str] | None] = mapped_column(JSON)
    rating: Mapped[int | None] = mapped_column(Integer)
    # EXIF ExposureBiasValue in EV (exposure compensation) and ExposureMode (0 auto, 1 manual,
    # 2 auto bracket): exposure brackets are told from them (processing/sets.py).
    exposure_bias: Mapped[float | None] = mapped_column(Float)
    exposure_mode: Mapped[int | None] = mapped_column(Integer)
    # The distance focused at, in metres (EXIF SubjectDistance): a focus stack steps it.
    focus_distance: Mapped[float | None] = mapped_column(Float)

    # Quality (the judge)
    quality_score: Mapped[float | None] = mapped_column(Float)
    sharpness: Mapped[float | None] = mapped_column(Float)
    exposure: Mapped[float | None] = mapped_column(Float)
    motion_blur: Mapped[float | None] = mapped_column(Float)
    brightness: Mapped[float | None] = mapped_column(Float)
    face_count: Mapped[int | None] = mapped_column(Integer)
    face_sharpness: Mapped[float | None] = mapped_column(Float)
    # Per face: "open", "closed" or "unknown", comma-separated (processing/eyes.py).
    eyes: Mapped[str | None] = mapped_column(Text)
    # Per face, in the same order: its sharpness, two decimals, comma-separated.
    face_sharpnesses: Mapped[str | None] = mapped_column(Text)
    # The eyes' own sharpness, size-weighted over the faces whose eyes were placed.
    eye_sharpness: Mapped[float | None] = mapped_column(Float)
    # Per face, in the order of `eyes`: box (fractions of the upright frame), eyes, sharpness
    # and eye_sharpness (processing.quality.face_entry).
    faces: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # Each tile's sharpness (rows x columns): a group's frames are compared tile by tile to
    # tell which one focused the subject (processing/group_focus.py).
    focus_tiles: Mapped[list[list[float]] | None] = mapped_column(JSON)
    # A tiny grey copy (processing.panorama.look_of): neighbours' looks tell a panorama sweep.
    look: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    # Which version of the judge made these values (processing.quality.QUALITY_VERSION).
    quality_version: Mapped[int | None] = mapped_column(Integer)
    # An original imported in place (services/import_service.py): its absolute path, which
    # stays the photographer's (never moved, never deleted), and its mtime when it was hashed.
    # None for uploads, whose original is `file_path` under STORAGE_ROOT.
    source_path: Mapped[str | None] = mapped_column(Text)
    source_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    # The second file of a RAW+JPEG pair (processing/pairing.py): one photo, one row. The
    # first file to arrive is the main one above (a JPEG before its RAW when both come
    # together); the companion is stored beside it (or stays where it was imported in place),
    # is served by `GET /images/{id}?which=companion|raw` and deleted with the image.
    companion_original_filename: Mapped[str | None] = mapped_column(String(255))
    companion_file_path: Mapped[str | None] = mapped_column(String(255))
    companion_source_path: Mapped[str | None] = mapped_column(Text)
    companion_source_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    companion_hash: Mapped[str | None] = mapped_column(String(64))
    companion_size: Mapped[int | None] = mapped_column(BigInteger)
    companion_mime_type: Mapped[str | None] = mapped_column(String(64))
    # processing.pairing.pair_stem of original_filename, set on insert: a partner is looked up
    # by it (crud_image.pair_candidates).
    pair_stem: Mapped[str | None] = mapped_column(
        String(255), index=True, default=_pair_stem_of_row
    )

    batch_associations: Mapped[list[ImageBatchAssociation]] = relationship(
        back_populates="image", lazy="raise", passive_deletes=True
    )

    __table_args__ = (Index("uq_images_companion_hash", "companion_hash", unique=True),)

    @property
    def shot_at_local(self) -> str | None:
        """The camera's wall-clock time of capture, without an offset."""
        return wall_clock(self.shot_at, self.shot_at_offset_minutes)

    @property
    def shot_at_offset(self) -> str | None:
        """`+02:00`, or None when the camera recorded no offset."""
        return offset_text(self.shot_at_offset_minutes)


class ImageCount(Base):
    """How many images there are: the sum of `images` over the rows. Triggers keep it in the
    transaction that inserts or deletes images (migration 20261203_i22_image_count); never
    written by the application."""

    __tablename__ = "image_count"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    images: Mapped[int] = mapped_column(BigInteger)


class ImageBatch(Base):
    __tablename__ = "image_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    image_associations: Mapped[list[ImageBatchAssociation]] = relationship(
        back_populates="batch",
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class ImageBatchAssociation(Base):
    __tablename__ = "image_batch_association"

    # On PostgreSQL these two foreign keys are statement-level triggers (migration
    # membership_checks: the same checks and cascades, once per statement, not per row);
    # SQLite keeps them as foreign keys.
    batch_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.image_batches.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.images.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    group_label: Mapped[str | None] = mapped_column(String(64))
    quality_rank: Mapped[int | None] = mapped_column(Integer)
    # Why this image ranks below its group's keeper ("blurred", "motion_blur", ...); None for
    # keepers and unranked images.
    rank_reason: Mapped[str | None] = mapped_column(String(32))
    # The judge's own rank (quality alone); quality_rank puts the photographer's keeper first.
    suggested_rank: Mapped[int | None] = mapped_column(Integer)
    # "burst" (one keeper suggested) or a set kept whole ("bracket": every frame a keeper);
    # None for Ungrouped and unanalysed images.
    group_kind: Mapped[str | None] = mapped_column(String(16))
    # A decision on this image in this batch (services/decision_service.py): pick "keep",
    # "reject" or None, stars 0..5, a colour label, and who made it ("user" or "judge"). A user
    # decision is never overwritten by analyze, rank or cull.
    pick: Mapped[str | None] = mapped_column(String(8))
    rating: Mapped[int | None] = mapped_column(Integer)
    color_label: Mapped[str | None] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(8))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    batch: Mapped[ImageBatch] = relationship(back_populates="image_associations", lazy="raise")
    image: Mapped[Image] = relationship(back_populates="batch_associations", lazy="raise")


class VectorVersion(Base):
    """One row: bumped by each transaction that changes stored vectors (see
    database.vector_version); the similarity index reloads what changed when it moves."""

    __tablename__ = "vector_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class ActiveModel(Base):
    """One row (id 1): the embedding model the process that embeds has loaded, published by
    that process when it loads (services.background.model_identity). Readers (analysis,
    similarity, `/health`, responses) take the id from here and never work it out from their
    own settings: only the loader knows the device it resolved and the fallback it took."""

    __tablename__ = "active_model"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The id stamped on the vectors it writes; None when no model could be loaded.
    model_id: Mapped[str | None] = mapped_column(String(255))
    configured_model: Mapped[str] = mapped_column(String(255))
    device: Mapped[str] = mapped_column(String(64))
    # Why the configured model is not the one in use (the offline fallback, or nothing).
    fallback_reason: Mapped[str | None] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FolderImport(Base):
    """A folder imported in place: its images are indexed where they are, into `batch_id`."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.image_batches.id", ondelete="SET NULL")
    )
    # pending -> running -> complete | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    found: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    # Entries left alone: symlinks leading out of the root, sockets, devices, FIFOs.
    refused: Mapped[int] = mapped_column(Integer, default=0)
    # The first failures, [{"file": relative path, "reason": ...}].
    failures: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set as it starts and at each chunk: an unfinished import whose heartbeat is older than
    # IMPORT_STALE_SECONDS lost its process (a crash), and another resumes it.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The run writing it (a token per run): a process whose token was replaced stops.
    runner: Mapped[str | None] = mapped_column(String(32))


class JudgeProfile(Base):
    """One row (id 1) while the library uses a judge fitted to the photographer's choices
    (services/judge_service.py); no row: the default judge. `in_use` says which weights rank:
    "fitted", or "default" when the fitted ones agreed less often with held-back choices."""

    __tablename__ = "judge_profile"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The fitted weights by part (processing.judge_fit.PARTS).
    weights: Mapped[dict[str, float]] = mapped_column(JSON)
    in_use: Mapped[str] = mapped_column(String(16))
    groups: Mapped[int] = mapped_column(Integer)
    pairs: Mapped[int] = mapped_column(Integer)
    # Held-back agreement of the fitted and of the default judge (processing.judge_fit.HeldOut).
    agreement: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Which judge ranks and why, with the figures, in words.
    note: Mapped[str] = mapped_column(Text)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
