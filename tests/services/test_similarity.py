"""The similarity index: invalidated by the database's vector version, refreshed by diff,
exact below the ANN threshold and an HNSW graph (usearch) above it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from crud import crud_batch, crud_image
from database import unit_of_work
from database.database import create_session_factory
from database.models import Image
from database.vector_version import current_version
from processing.feature_extraction import ManagedEmbedder
from services.background.pipeline import process_images
from services.similarity_service import EmbeddingIndex, similar_images
from tests.api.helpers import upload
from tests.factories import jpeg_bytes

MODEL = "test-model"
DIM = 32


@pytest.fixture(autouse=True)
def _tracked(request: pytest.FixtureRequest) -> None:
    # The tests' own factory gets the app's unit of work (only where a test uses it: on
    # SQLite its transaction holds the write lock that clean_database needs).
    if "session_factory" in request.fixturenames:
        unit_of_work.install(request.getfixturevalue("session_factory"))


def stored_vectors(db: Session, ids: list[int]) -> dict[int, np.ndarray]:
    rows = db.execute(select(Image.id, Image.features).where(Image.id.in_(ids))).all()
    return {row.id: np.frombuffer(row.features, dtype=np.float32) for row in rows}


def test_similar_after_deletes_while_older_images_get_embedded(
    client: TestClient,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    tiny_embedder: ManagedEmbedder,
) -> None:
    """Issue 10, item 10: same count and same newest id after the change; never a 500."""
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=300 + i)) for i in range(24)])
    older, doomed, kept = ids[:8], ids[8:16], ids[16:]
    db.execute(update(Image).where(Image.id.in_(older)).values(features=None, embedding_model=None))
    db.commit()
    query = kept[-1]
    first = client.get(f"/images/{query}/similar", params={"limit": 30})
    assert first.status_code == 200, first.text
    assert {f["image"]["id"] for f in first.json()} == set(doomed + kept[:-1])

    for image_id in doomed:
        assert client.delete(f"/images/{image_id}").status_code in (200, 204)
    summary = process_images(session_factory, settings, tiny_embedder.load(), older)
    assert summary.embeddings == len(older)

    response = client.get(f"/images/{query}/similar", params={"limit": 30})
    assert response.status_code == 200, response.text
    found = {f["image"]["id"]: f["similarity"] for f in response.json()}
    assert set(found) == set(older + kept[:-1])
    vectors = stored_vectors(db, [*found, query])
    for image_id, similarity in found.items():
        assert similarity == pytest.approx(float(vectors[image_id] @ vectors[query]), abs=3e-3)


@pytest.fixture
def library(db: Session) -> tuple[list[int], np.ndarray]:
    """300 images with clustered unit vectors of a test model, committed."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(30, DIM))
    vectors = centres[rng.integers(0, 30, 300)] + 0.3 * rng.normal(size=(300, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    rows = [
        {
            "filename": f"sim{i:029x}.jpg",
            "original_filename": f"{i}.jpg",
            "file_path": f"images/sim{i:029x}.jpg",
            "image_hash": f"sim{i:061x}",
            "file_size": 1,
            "mime_type": "image/jpeg",
            "features": vectors[i].tobytes(),
            "embedding_model": MODEL,
        }
        for i in range(300)
    ]
    db.execute(insert(Image), rows)
    db.commit()
    ids = list(
        db.scalars(select(Image.id).where(Image.embedding_model == MODEL).order_by(Image.id))
    )
    return ids, vectors


def exact_top(
    ids: list[int], vectors: np.ndarray, alive: set[int], query: int, k: int
) -> list[int]:
    position = ids.index(query)
    order = np.argsort(-(vectors @ vectors[position]), kind="stable")
    return [ids[i] for i in order if ids[i] in alive and ids[i] != query][:k]


def test_version_moves_only_for_vector_changes(
    db: Session, library: tuple[list[int], np.ndarray]
) -> None:
    ids, _ = library
    start = current_version(db)
    crud_image.update_processed_image(db, ids[0], rating=5, caption="not a vector")
    db.commit()
    assert current_version(db) == start
    crud_image.update_processed_image(db, ids[0], embedding_model="other")
    db.commit()
    assert current_version(db) == start + 1
    db.delete(db.get_one(Image, ids[1]))
    db.commit()
    assert current_version(db) == start + 2
    crud_image.update_processed_image(db, ids[2], features=None)
    db.rollback()
    assert current_version(db) == start + 2


def test_snapshot_is_reused_until_the_version_moves(
    db: Session, library: tuple[list[int], np.ndarray]
) -> None:
    ids, _ = library
    index = EmbeddingIndex()
    first = index.snapshot(db, MODEL)
    assert index.snapshot(db, MODEL) is first
    assert first.ids.tolist() == ids
    db.execute(delete(Image).where(Image.id.in_(ids[:5])))
    db.commit()
    second = index.snapshot(db, MODEL)
    assert second is not first
    assert second.ids.tolist() == ids[5:]


@pytest.mark.parametrize("ann_min", [10**9, 100], ids=["exact", "hnsw"])
def test_results_follow_deletes_and_additions(
    db: Session, library: tuple[list[int], np.ndarray], ann_min: int
) -> None:
    ids, vectors = library
    index = EmbeddingIndex(ann_min_vectors=ann_min, ann_threads=1)
    alive = set(ids)
    query = ids[0]
    found = [i.id for i, _ in similar_images(db, index, query, MODEL, 10, None)]
    assert found == exact_top(ids, vectors, alive, query, 10)
    if ann_min == 100:
        assert index.wait_for_ann(timeout=60)

    # Delete the five nearest, and "embed" five images that had no vector yet.
    doomed = found[:5]
    db.execute(delete(Image).where(Image.id.in_(doomed)))
    hidden = ids[-5:]
    saved = {
        row.id: row.features
        for row in db.execute(select(Image.id, Image.features).where(Image.id.in_(hidden)))
    }
    db.execute(
        update(Image).where(Image.id.in_(hidden)).values(features=None, embedding_model=None)
    )
    db.commit()
    alive -= set(doomed) | set(hidden)
    found = [i.id for i, _ in similar_images(db, index, query, MODEL, 10, None)]
    assert found == exact_top(ids, vectors, alive, query, 10)

    for image_id, features in saved.items():
        db.execute(
            update(Image)
            .where(Image.id == image_id)
            .values(features=features, embedding_model=MODEL)
        )
    db.commit()
    alive |= set(hidden)
    result = similar_images(db, index, query, MODEL, 10, None)
    assert [i.id for i, _ in result] == exact_top(ids, vectors, alive, query, 10)
    assert not set(doomed) & {i.id for i, _ in result}
    if ann_min == 100:
        assert index.ann_ready()


@pytest.mark.parametrize("ann_min", [10**9, 100], ids=["exact", "hnsw"])
def test_batch_filter_ranks_members_exactly(
    db: Session, library: tuple[list[int], np.ndarray], ann_min: int
) -> None:
    ids, vectors = library
    index = EmbeddingIndex(ann_min_vectors=ann_min, ann_threads=1)
    similar_images(db, index, ids[0], MODEL, 5, None)
    if ann_min == 100:
        assert index.wait_for_ann(timeout=60)
    members = ids[::7]
    batch = crud_batch.create_batch(db, "members")
    crud_batch.add_members(db, batch.id, members)
    db.commit()
    result = similar_images(db, index, ids[0], MODEL, 8, batch.id)
    assert [i.id for i, _ in result] == exact_top(ids, vectors, set(members), ids[0], 8)
    for image, similarity in result:
        expected = float(vectors[ids.index(image.id)] @ vectors[0])
        assert similarity == pytest.approx(expected, abs=3e-3)


WRITER = """
import sys
from sqlalchemy import delete
from database.database import create_db_engine, create_session_factory
from database.database import create_session_factory
from database.models import Image
factory = create_session_factory(create_db_engine(sys.argv[1]))
with factory() as session, session.begin():
    session.execute(delete(Image).where(Image.id == int(sys.argv[2])))
"""


def test_a_change_committed_by_another_process_is_seen(
    clean_database: Engine, database_url: str
) -> None:
    """The version lives in the database: a second server or a Celery worker bumps it too."""
    factory = create_session_factory(clean_database)
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(4, DIM)).astype(np.float32)
    with factory() as session, session.begin():
        session.execute(
            insert(Image),
            [
                {
                    "filename": f"p{i:031x}.jpg",
                    "original_filename": f"{i}.jpg",
                    "file_path": f"images/p{i:031x}.jpg",
                    "image_hash": f"p{i:063x}",
                    "file_size": 1,
                    "mime_type": "image/jpeg",
                    "features": vectors[i].tobytes(),
                    "embedding_model": MODEL,
                }
                for i in range(4)
            ],
        )
    index = EmbeddingIndex()
    with factory() as session:
        ids = index.snapshot(session, MODEL).ids.tolist()
    assert len(ids) == 4

    subprocess.run(
        [sys.executable, "-c", WRITER, database_url, str(ids[1])],
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    with factory() as session:
        assert index.snapshot(session, MODEL).ids.tolist() == [ids[0], *ids[2:]]
        found = [image.id for image, _ in similar_images(session, index, ids[0], MODEL, 5, None)]
    assert sorted(found) == sorted(ids[2:])
