"""Nearest images by cosine similarity of their embeddings (one matrix product).

The active model's vectors are kept in memory between requests and reloaded only when the
set of embedded images changed (their count or the newest id), so a reviewer clicking from
image to image pays for one matrix product, not for reading every vector again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crud import crud_batch, crud_image
from database.models import Image
from services.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class _Snapshot:
    model: str
    fingerprint: tuple[int, int]
    ids: NDArray[np.int64]
    vectors: NDArray[np.float32]


class EmbeddingIndex:
    """The active model's vectors, in memory; one per process, safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def vectors(
        self, session: Session, model: str
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        embedded = (Image.embedding_model == model) & Image.features.is_not(None)
        count, newest = session.execute(
            select(func.count(), func.coalesce(func.max(Image.id), 0)).where(embedded)
        ).one()
        fingerprint = (int(count), int(newest))
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or (snapshot.model, snapshot.fingerprint) != (model, fingerprint):
                rows = session.execute(
                    select(Image.id, Image.features).where(embedded).order_by(Image.id)
                ).all()
                ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
                flat = np.frombuffer(b"".join(row[1] or b"" for row in rows), dtype=np.float32)
                vectors = flat.reshape(len(rows), -1) if rows else flat.reshape(0, 0)
                snapshot = self._snapshot = _Snapshot(model, fingerprint, ids, vectors)
        return snapshot.ids, snapshot.vectors


def similar_images(
    session: Session,
    index: EmbeddingIndex,
    image_id: int,
    active_model: str,
    limit: int,
    batch_id: int | None,
) -> list[tuple[Image, float]]:
    """The `limit` images most similar to `image_id`, best first, with their similarity.

    Only vectors from the active model are compared; `batch_id` restricts the candidates."""
    image = crud_image.get_image(session, image_id)
    if image is None:
        raise NotFound(f"Image {image_id} not found.")
    if image.embedding_model != active_model:
        raise Conflict(
            f"Image {image_id} has no embedding from the active model yet; try again shortly."
        )
    if batch_id is not None and crud_batch.get_batch(session, batch_id, with_images=False) is None:
        raise NotFound(f"Batch {batch_id} not found.")

    ids, vectors = index.vectors(session, active_model)
    position = np.searchsorted(ids, image_id)
    if position >= ids.size or ids[position] != image_id:
        raise Conflict(f"Image {image_id} has no embedding from the active model yet.")
    candidates = ids != image_id
    if batch_id is not None:
        members = np.fromiter(crud_batch.member_ids(session, batch_id), dtype=np.int64)
        candidates &= np.isin(ids, members)
    rows = np.flatnonzero(candidates)
    if rows.size == 0:
        return []
    # Vectors are stored L2-normalised, so the dot product is the cosine similarity.
    similarity = vectors[rows] @ vectors[position] if batch_id is not None else None
    if similarity is None:
        similarity = (vectors @ vectors[position])[rows]
    count = min(limit, rows.size)
    top = np.argpartition(-similarity, count - 1)[:count]
    top = top[np.argsort(-similarity[top], kind="stable")]
    found = {i.id: i for i in crud_image.get_images(session, ids[rows[top]].tolist())}
    return [(found[int(ids[rows[k]])], float(similarity[k])) for k in top]
