"""Small typed queries on images. They add and flush; the caller's transaction commits."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    FromClause,
    Integer,
    SmallInteger,
    String,
    Text,
    any_,
    bindparam,
    cast,
    delete,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from database import readiness, unit_of_work
from database.models import Image, ImageBatchAssociation, ImageCount
from database.vector_version import VECTOR_COLUMNS

# Ids bound in one IN (...) list: SQLite refuses a statement with more than 32,766 parameters.
IDS_PER_QUERY = 2000


def get_image(session: Session, image_id: int) -> Image | None:
    return session.get(Image, image_id)


def get_image_by_hash(session: Session, image_hash: str) -> Image | None:
    """The image these bytes are: its main file or its companion (a RAW+JPEG pair's other)."""
    query = select(Image).where(
        or_(Image.image_hash == image_hash, Image.companion_hash == image_hash)
    )
    return session.scalars(query.limit(1)).one_or_none()


def image_column_names(image_columns: Sequence[str]) -> list[str]:
    """Of these names, those of the image table's columns, "id" first, each once."""
    table = Image.__table__
    return [name for name in dict.fromkeys(["id", *image_columns]) if name in table.c]


def image_rows(
    session: Session, image_columns: Sequence[str], offset: int = 0, limit: int | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """A page of images by id as plain rows of the columns named (image_column_names, which it
    returns): no ORM objects, and not the vectors (a 100-image page read 12.5 ms as objects)."""
    names = image_column_names(image_columns)
    query = select(*(Image.__table__.c[name] for name in names)).order_by(Image.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return names, [tuple(row) for row in session.connection().execute(query)]


def count_images(session: Session) -> int:
    """How many images there are, exact in the session's snapshot, without a scan of `images`
    (triggers keep ImageCount in the transaction that inserts or deletes)."""
    return int(session.scalar(select(func.coalesce(func.sum(ImageCount.images), 0))) or 0)


_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1


def _id_array(ids: Collection[int]) -> ColumnElement[Any]:
    """PostgreSQL: the ids as one int[] bound as text ('{1,2,3}'): psycopg2 would send a list
    as ARRAY[1,2,3], 100k constants for the server to parse (1 s at 100k, against 0.07 s)."""
    # An id past int4 names no row (images.id is an integer) and would fail the cast: a 500.
    fitting = sorted({int(i) for i in ids if _INT4_MIN <= i <= _INT4_MAX})
    text = "{" + ",".join(map(str, fitting)) + "}"
    return cast(bindparam(None, text, type_=Text, unique=True), postgresql.ARRAY(Integer))


def id_list(session: Session, image_ids: Collection[int]) -> FromClause:
    """The ids as a one-column table (`value`) bound as ONE value: an int[] on PostgreSQL
    (unnest), a JSON list on SQLite (json_each). 100k ids in an IN list are 100k parameters:
    seconds to compile and send, and over SQLite's limit of 32,766."""
    if session.get_bind().dialect.name == "postgresql":
        return func.unnest(_id_array(image_ids)).table_valued("value").render_derived()
    ids = json.dumps(sorted(set(image_ids)))
    return func.json_each(bindparam(None, ids, unique=True)).table_valued("value")


def _id_in(session: Session, image_ids: Collection[int]) -> ColumnElement[bool]:
    """`Image.id IN image_ids`, the ids bound as one value (an index scan on PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        return Image.id == any_(_id_array(image_ids))
    return Image.id.in_(select(id_list(session, image_ids).c.value))


def existing_image_ids(session: Session, image_ids: Collection[int]) -> set[int]:
    if not image_ids:
        return set()
    return set(session.scalars(select(Image.id).where(_id_in(session, image_ids))))


def lock_images_for_share(session: Session, image_ids: Collection[int]) -> set[int]:
    """Of these ids, those of existing images, locked against a delete (FOR KEY SHARE, in id
    order) until the transaction ends: a membership inserted for them cannot then fail its
    foreign key. (SQLite: no row locks; its single writer has the same effect.)"""
    if not image_ids:
        return set()
    query = (
        select(Image.id)
        .where(_id_in(session, image_ids))
        .order_by(Image.id)
        .with_for_update(read=True, key_share=True)
    )
    return set(session.scalars(query))


def image_models(session: Session, image_ids: Collection[int]) -> dict[int, str | None]:
    """Of these ids, those of existing images, with each one's embedding model; not locked
    (inserting memberships locks their images, in the membership check: an explicit FOR KEY
    SHARE of 100k rows first cost 0.2-4 s more)."""
    if not image_ids:
        return {}
    query = select(Image.id, Image.embedding_model).where(_id_in(session, image_ids))
    return {row[0]: row[1] for row in session.execute(query)}


def lock_image_for_update(session: Session, image_id: int) -> Image | None:
    """The image, locked for a delete until the transaction ends."""
    query = select(Image).where(Image.id == image_id).with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def lock_hashes(session: Session, hashes: Collection[str]) -> None:
    """Serialise uploads of the same bytes: a transaction-long advisory lock per SHA-256, taken
    in one global order, so two uploads of the same files in opposite orders wait for each
    other instead of deadlocking on the unique index (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({int.from_bytes(bytes.fromhex(h)[:8], "big", signed=True) for h in hashes})
    for key in keys:
        session.execute(select(func.pg_advisory_xact_lock(key)))


def lock_pair_stems(session: Session, stems: Collection[str]) -> None:
    """Serialise the files that could pair (processing/pairing.py: same stem): a
    transaction-long advisory lock per stem, taken after `lock_hashes` and in one order, so
    the two halves of a pair arriving at once are stored one after the other, the second
    seeing the first (PostgreSQL only; SQLite has one writer)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digests = (hashlib.sha256(b"pair-stem:" + stem.encode()).digest() for stem in stems)
    keys = sorted({int.from_bytes(digest[:8], "big", signed=True) for digest in digests})
    for key in keys:
        session.execute(select(func.pg_advisory_xact_lock(key)))


def pair_candidates(
    session: Session, stem: str, shot_at: datetime, window: timedelta
) -> Sequence[Image]:
    """Images without a companion whose file name has this stem (processing.pairing.pair_stem)
    taken within `window` of `shot_at`: the partners processing.pairing.is_pair may accept."""
    query = (
        select(Image)
        .where(
            Image.pair_stem == stem[:255],
            Image.companion_hash.is_(None),
            Image.shot_at.between(shot_at - window, shot_at + window),
        )
        .order_by(Image.id)
    )
    return session.scalars(query).all()


def attach_companion(session: Session, image_id: int, values: dict[str, Any]) -> bool:
    """Record a companion file on the image, if it still exists and has none (a concurrent
    delete or pairing wins); whether it was recorded."""
    statement = (
        update(Image)
        .where(Image.id == image_id, Image.companion_hash.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(statement).rowcount) == 1  # type: ignore[attr-defined]


# What an analysis reads of each member: which model made its vector, whether it failed, when
# and with which camera it was taken, and (last) the vector's bytes.
_CLUSTERING_COLUMNS = (
    Image.id,
    Image.embedding_model,
    Image.processing_error,
    Image.shot_at,
    Image.camera_make,
    Image.camera_model,
    Image.camera_serial,
    Image.features,
)
# What ranking reads of each member (processing.quality.Judged).
JUDGED_COLUMNS = (
    Image.id,
    Image.quality_score,
    Image.sharpness,
    Image.exposure,
    Image.motion_blur,
    Image.brightness,
    Image.face_count,
    Image.face_sharpness,
    Image.eye_sharpness,
    Image.eyes,
    Image.focus_tiles,
)


def clustering_rows(session: Session, batch_id: int) -> Sequence[Any]:
    """The batch's members as plain rows for clustering (no ORM objects), by image id."""
    query = (
        select(*_CLUSTERING_COLUMNS)
        .join(ImageBatchAssociation, ImageBatchAssociation.image_id == Image.id)
        .where(ImageBatchAssociation.batch_id == batch_id)
        .order_by(Image.id)
    )
    return session.connection().execute(query).all()


class EmbeddingState(NamedTuple):
    """How many members of a batch have this embedding model, failed or not, with a vector
    or not."""

    embedding_model: str | None
    failed: bool
    has_vector: bool
    members: int


def embedding_states(session: Session, batch_id: int) -> list[EmbeddingState]:
    """The batch's members counted by embedding model, failure and vector (the database
    counts: no vector is read; a few rows however large the batch)."""
    failed = Image.processing_error.is_not(None)
    has_vector = Image.features.is_not(None)
    query = (
        select(Image.embedding_model, failed, has_vector, func.count())
        .join(ImageBatchAssociation, ImageBatchAssociation.image_id == Image.id)
        .where(ImageBatchAssociation.batch_id == batch_id)
        .group_by(Image.embedding_model, failed, has_vector)
    )
    return [
        EmbeddingState(model, bool(failed_), bool(vector), int(count))
        for model, failed_, vector, count in session.connection().execute(query)
    ]


def judged_rows(session: Session, batch_id: int) -> list[Any]:
    """The batch's members as plain rows of their quality parts, for ranking."""
    query = (
        select(*JUDGED_COLUMNS)
        .join(ImageBatchAssociation, ImageBatchAssociation.image_id == Image.id)
        .where(ImageBatchAssociation.batch_id == batch_id)
    )
    return list(session.connection().execute(query).all())


# What bracket detection reads of each member (processing.sets.Frame).
_FRAME_COLUMNS = (
    Image.id,
    Image.shot_at,
    Image.camera_make,
    Image.camera_model,
    Image.camera_serial,
    Image.exposure_bias,
    Image.exposure_mode,
    Image.focus_tiles,
    Image.focal_length,
    Image.exposure_time,
    Image.f_number,
    Image.iso,
    Image.focus_distance,
)


def looks_of(session: Session, image_ids: Collection[int]) -> dict[int, bytes]:
    """The stored looks (processing.panorama.look_of) of these images, by id; images without
    one are left out."""
    looks: dict[int, bytes] = {}
    ids = sorted(image_ids)
    for start in range(0, len(ids), IDS_PER_QUERY):
        query = select(Image.id, Image.look).where(
            Image.id.in_(ids[start : start + IDS_PER_QUERY]), Image.look.is_not(None)
        )
        looks.update({i: bytes(look) for i, look in session.execute(query) if look is not None})
    return looks


def frame_rows(session: Session, batch_id: int) -> list[Any]:
    """The batch's members as plain rows of their capture time, camera, exposure bias/mode,
    tile sharpness map, focal length, exposure settings and focus distance."""
    query = (
        select(*_FRAME_COLUMNS)
        .join(ImageBatchAssociation, ImageBatchAssociation.image_id == Image.id)
        .where(ImageBatchAssociation.batch_id == batch_id)
    )
    return list(session.connection().execute(query).all())


def member_states(session: Session, batch_id: int) -> dict[int, tuple[str | None, bool]]:
    """Each member's embedding model and whether its processing failed, by image id."""
    query = (
        select(Image.id, Image.embedding_model, Image.processing_error.is_not(None))
        .join(ImageBatchAssociation, ImageBatchAssociation.image_id == Image.id)
        .where(ImageBatchAssociation.batch_id == batch_id)
    )
    return {
        image_id: (model, bool(failed))
        for image_id, model, failed in session.connection().execute(query)
    }


def get_images(session: Session, image_ids: Collection[int]) -> Sequence[Image]:
    return session.scalars(select(Image).where(Image.id.in_(image_ids)).order_by(Image.id)).all()


_INTEGER_BITS = {SmallInteger: 16, BigInteger: 64, Integer: 32}


def _integer_bits(column_type: TypeEngine[Any]) -> int | None:
    for kind, bits in _INTEGER_BITS.items():  # subclasses first: BigInteger is an Integer
        if isinstance(column_type, kind):
            return bits
    return None


def _fit(column_type: TypeEngine[Any], value: object) -> tuple[object, str | None]:
    """`value` made storable in a column of `column_type`, and what was changed (or None)."""
    if isinstance(value, str) and isinstance(column_type, String):
        # PostgreSQL refuses NUL in text, and no database can encode an unpaired surrogate.
        fitted = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
        if column_type.length is not None and len(fitted) > column_type.length:
            return fitted[: column_type.length], f"cut to {column_type.length} characters"
        return fitted, None if fitted == value else "unstorable characters removed"
    bits = _integer_bits(column_type)
    if bits is not None and isinstance(value, int):
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return None, f"dropped: {value} is out of range"
    if isinstance(column_type, Float) and isinstance(value, float) and not math.isfinite(value):
        return None, f"dropped: {value} is not a finite number"
    return value, None


def fit_to_columns(
    model: type[Any], values: dict[str, object]
) -> tuple[dict[str, object], list[str]]:
    """The values, each made to fit its column of `model` (strings cut to the column's
    length, integers out of its range and non-finite floats dropped), with a note per change.

    Metadata read from a file is the client's data: one over-long or absurd value must cost
    that field, never the upload (a database error would lose the whole request)."""
    columns = model.__table__.columns
    fitted: dict[str, object] = {}
    notes: list[str] = []
    for name, value in values.items():
        fitted[name], note = _fit(columns[name].type, value) if name in columns else (value, None)
        if note is not None:
            notes.append(f"{name} {note}")
    return fitted, notes


def add_image(session: Session, image: Image) -> Image:
    session.add(image)
    session.flush()
    return image


def delete_image(session: Session, image: Image) -> None:
    # Associations go with it through ON DELETE CASCADE.
    session.execute(delete(Image).where(Image.id == image.id))
    session.expunge(image)


def all_filenames(session: Session) -> set[str]:
    return set(session.scalars(select(Image.filename)))


def ids_needing_processing(session: Session, active_model: str | None) -> list[int]:
    """Images missing a thumbnail, a quality score or an embedding from `active_model`,
    that have not failed. With no active model there is no embedding work to hand out."""
    needs_embedding = (
        false() if active_model is None else readiness.lacks_embedding_sql(active_model)
    )
    query = (
        select(Image.id)
        .where(Image.processing_error.is_(None))
        .where(or_(readiness.needs_thumbnail_sql(), readiness.needs_quality_sql(), needs_embedding))
        .order_by(Image.id)
    )
    return list(session.scalars(query))


def update_processed_image(
    session: Session, image_id: int, *, made_from: str | None = None, **values: object
) -> bool:
    """Write processing results; False when the image was deleted meanwhile, or (`made_from`:
    the SHA-256 of the file they were made from) its main file is no longer that file (a RAW
    whose JPEG took its place, services/companions.py)."""
    statement = update(Image).where(Image.id == image_id)
    if made_from is not None:
        statement = statement.where(Image.image_hash == made_from)
    result = session.execute(statement.values(**values))
    written = bool(result.rowcount)  # type: ignore[attr-defined]
    if written and VECTOR_COLUMNS.intersection(values):
        unit_of_work.vectors_changed(session)
    return written


def processing_counts(session: Session, active_model: str | None) -> dict[str, int]:
    """How many images still wait for a thumbnail / quality / embedding; how many failed.

    An embedding counts only when `active_model` made it: one from another model (a restart
    with another EMBEDDING_MODEL) is re-embedding work, and while no model is active yet
    every image waits for one."""
    ok = Image.processing_error.is_(None)
    row = session.execute(
        select(
            func.count().filter(ok, readiness.needs_thumbnail_sql()),
            func.count().filter(ok, readiness.needs_quality_sql()),
            func.count().filter(ok, readiness.lacks_embedding_sql(active_model)),
            func.count().filter(Image.processing_error.is_not(None)),
        ).select_from(Image)
    ).one()
    return {
        "pending_thumbnails": row[0],
        "pending_quality": row[1],
        "pending_embeddings": row[2],
        "failed_images": row[3],
    }
