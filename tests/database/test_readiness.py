"""Each readiness rule's SQL expression and row check pick the same rows, on real rows."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from crud import crud_batch, crud_image
from database import readiness
from database.models import Image, ImageBatch, ImageBatchAssociation
from processing.quality import QUALITY_VERSION
from tests.factories import image_row

MODELS = (None, "model-a", "model-b")


def _images(db: Session) -> list[Image]:
    """One image per combination of thumbnail, judge version and embedding model."""
    combos = itertools.product((False, True), (None, QUALITY_VERSION - 1, QUALITY_VERSION), MODELS)
    images = []
    for n, (thumbnail, version, model) in enumerate(combos):
        image = image_row("r", n, model, has_thumbnail=thumbnail, quality_version=version)
        images.append(crud_image.add_image(db, image))
    return images


def _selected(db: Session, clause: ColumnElement[bool]) -> set[int]:
    return set(db.scalars(select(Image.id).where(clause)))


def test_image_rules_agree(db: Session) -> None:
    images = _images(db)
    assert _selected(db, readiness.needs_thumbnail_sql()) == {
        i.id for i in images if readiness.needs_thumbnail(i.has_thumbnail)
    }
    assert _selected(db, readiness.needs_quality_sql()) == {
        i.id for i in images if readiness.needs_quality(i.quality_version)
    }
    for active in MODELS:
        embedded = {i.id for i in images if readiness.is_embedded(i.embedding_model, active)}
        lacking = {i.id for i in images if readiness.lacks_embedding(i.embedding_model, active)}
        assert _selected(db, readiness.is_embedded_sql(active)) == embedded
        assert _selected(db, readiness.lacks_embedding_sql(active)) == lacking
        assert embedded | lacking == {i.id for i in images}
        assert not embedded & lacking
    # While no model is active nothing counts as embedded, not even a vector of some model.
    assert not _selected(db, readiness.is_embedded_sql(None))
    assert len(_selected(db, readiness.is_embedded_sql("model-a"))) == 6


def test_counts_use_the_rules(db: Session) -> None:
    images = _images(db)
    batch = crud_batch.create_batch(db, "counts")
    crud_batch.add_members(db, batch.id, [i.id for i in images])
    for active in MODELS:
        embedded = sum(readiness.is_embedded(i.embedding_model, active) for i in images)
        assert crud_batch.member_counts(db, [batch.id], active)[batch.id] == (18, embedded)
        counts = crud_image.processing_counts(db, active)
        assert counts["pending_embeddings"] == 18 - embedded
        assert counts["pending_thumbnails"] == 9
        assert counts["pending_quality"] == 12


@pytest.mark.parametrize(
    ("label", "rank", "keeper"),
    [
        ("Group 1", 1, True),
        ("Group 1", 2, False),
        ("Group 1", None, False),
        ("A by hand", 1, True),
        (readiness.UNGROUPED, 1, False),
        (None, 1, False),
        (None, None, False),
    ],
)
def test_keeper_is_rank_one_of_a_group(
    db: Session, label: str | None, rank: int | None, keeper: bool
) -> None:
    image = _images(db)[0]
    batch = ImageBatch(batch_name="keepers")
    db.add(batch)
    db.flush()
    member = ImageBatchAssociation(
        batch_id=batch.id, image_id=image.id, group_label=label, quality_rank=rank
    )
    db.add(member)
    db.flush()
    assert readiness.is_keeper(member) is keeper
    assert readiness.is_grouped(label) is (label not in (None, readiness.UNGROUPED))
    a = ImageBatchAssociation
    in_db = select(a.image_id).where(a.batch_id == batch.id)
    assert bool(db.scalars(in_db.where(readiness.is_keeper_sql())).all()) is keeper
    assert bool(db.scalars(in_db.where(readiness.is_grouped_sql())).all()) is readiness.is_grouped(
        label
    )


@pytest.mark.parametrize(
    ("label", "rank", "pick", "keeper"),
    [
        ("Group 1", 1, "reject", False),  # the photographer rejected the judge's keeper
        ("Group 1", 2, "keep", True),
        (readiness.UNGROUPED, 1, "keep", True),  # a keep is a keep, grouped or not
        ("Group 1", 1, None, True),
    ],
)
def test_a_decision_wins_over_the_rank(
    db: Session, label: str, rank: int, pick: str | None, keeper: bool
) -> None:
    image = _images(db)[0]
    batch = ImageBatch(batch_name="decided")
    db.add(batch)
    db.flush()
    member = ImageBatchAssociation(
        batch_id=batch.id,
        image_id=image.id,
        group_label=label,
        quality_rank=rank,
        suggested_rank=1,
        pick=pick,
    )
    db.add(member)
    db.flush()
    assert readiness.is_keeper(member) is keeper
    a = ImageBatchAssociation
    in_db = select(a.image_id).where(a.batch_id == batch.id)
    assert bool(db.scalars(in_db.where(readiness.is_keeper_sql())).all()) is keeper
    suggested = readiness.is_suggested_keeper(label, 1)
    assert suggested is readiness.is_grouped(label)
    assert bool(db.scalars(in_db.where(readiness.is_suggested_keeper_sql())).all()) is suggested
