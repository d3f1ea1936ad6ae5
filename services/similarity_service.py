"""Nearest images by cosine similarity of their embeddings (one matrix product)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from crud import crud_batch, crud_image
from database.models import Image, ImageBatchAssociation
from services.errors import Conflict, NotFound


def similar_images(
    session: Session, image_id: int, active_model: str, limit: int, batch_id: int | None
) -> list[tuple[Image, float]]:
    """The `limit` images most similar to `image_id`, best first, with their similarity.

    Only vectors from the active model are compared; `batch_id` restricts the candidates."""
    image = session.scalars(
        select(Image).options(undefer(Image.features)).where(Image.id == image_id)
    ).one_or_none()
    if image is None:
        raise NotFound(f"Image {image_id} not found.")
    if image.features is None or image.embedding_model != active_model:
        raise Conflict(
            f"Image {image_id} has no embedding from the active model yet; try again shortly."
        )
    query = (
        select(Image.id, Image.features)
        .where(Image.embedding_model == active_model)
        .where(Image.features.is_not(None))
        .where(Image.id != image_id)
    )
    if batch_id is not None:
        if crud_batch.get_batch(session, batch_id, with_images=False) is None:
            raise NotFound(f"Batch {batch_id} not found.")
        query = query.join(ImageBatchAssociation).where(ImageBatchAssociation.batch_id == batch_id)
    rows = session.execute(query).all()
    if not rows:
        return []

    target = np.frombuffer(image.features, dtype=np.float32)
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    matrix = np.frombuffer(b"".join(row[1] or b"" for row in rows), dtype=np.float32)
    # Vectors are stored L2-normalised, so the dot product is the cosine similarity.
    similarity = matrix.reshape(len(rows), target.size) @ target
    count = min(limit, len(rows))
    top = np.argpartition(-similarity, count - 1)[:count]
    top = top[np.argsort(-similarity[top], kind="stable")]
    found = {i.id: i for i in crud_image.get_images(session, ids[top].tolist())}
    return [(found[int(ids[k])], float(similarity[k])) for k in top]
