"""Nearest images by cosine similarity of their embeddings, at library scale.

The active model's vectors live in memory between requests, as float16 (half the bytes of
the stored float32; similarities move by ~1e-3). They are refreshed only when the database's
vector version moved (database.vector_version: bumped by every commit that writes or deletes
vectors, in any process), and then only by what changed: the ids of embedded images are
compared, deleted ones dropped, new ones read. Nothing is guessed from counts or ids.

Below ANN_MIN_VECTORS a query is an exact scan (usearch's SIMD kernels, a few ms). Above it,
an HNSW graph (usearch, as the kNN grouping uses) is built once on a background thread, and
kept up to date with the same diffs; until it is ready, queries stay exact.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session
from usearch.index import Index, search

from crud import crud_batch, crud_image
from database import readiness
from database.models import Image
from database.vector_version import current_version
from services.errors import Conflict, NotFound

logger = logging.getLogger(__name__)

# Under this many vectors an exact scan is as fast as a graph search (and exact).
ANN_MIN_VECTORS = 20_000
# HNSW shape; recall of the exact top 10 is printed by bench.similar.
_CONNECTIVITY = 16
_EXPANSION_ADD = 64
_EXPANSION_SEARCH = 128
# New vectors are read in chunks of this many ids (bounded IN lists).
_READ_CHUNK = 2000
# Candidates fetched beyond `limit`: an image deleted after the snapshot is then skipped.
_SLACK = 8


@dataclass(frozen=True, slots=True)
class _Snapshot:
    model: str
    version: int
    ids: NDArray[np.int64]  # sorted
    # Row i is ids[i]'s vector; None once the graph holds them (one copy in memory, not two).
    vectors: NDArray[np.float16] | None


class EmbeddingIndex:
    """The active model's vectors, in memory; one per process, safe across threads."""

    def __init__(self, ann_min_vectors: int = ANN_MIN_VECTORS, ann_threads: int = 0) -> None:
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._ann_min = ann_min_vectors
        self._ann_threads = ann_threads
        # The graph, its model and the ids it holds; guarded by _lock.
        self._ann: Index | None = None
        self._ann_model: str | None = None
        self._ann_ids: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._building: threading.Thread | None = None

    def snapshot(self, session: Session, model: str) -> _Snapshot:
        """The vectors as of the committed version this session sees."""
        # Read before the vectors: a commit landing in between only makes the next call
        # refresh again, never leaves a change unseen.
        version = current_version(session)
        with self._lock:
            old = self._snapshot
            if old is not None and (old.model, old.version) == (model, version):
                return old
            added = None
            if old is not None and old.model == model:
                new, added = _refreshed(session, old, version)
            else:
                new = _loaded(session, model, version)
            self._snapshot = new
            self._sync_ann(new, added)
        return new

    def ann_ready(self) -> bool:
        with self._lock:
            return self._ann is not None

    def wait_for_ann(self, timeout: float | None = None) -> bool:
        """Block until a background graph build finishes (benchmarks, tests)."""
        building = self._building
        if building is not None:
            building.join(timeout)
        return self.ann_ready()

    def vectors_of(self, snap: _Snapshot, rows: NDArray[np.intp]) -> NDArray[np.float32]:
        """The vectors of these rows of `snap`, as float32."""
        if snap.vectors is not None:
            return snap.vectors[rows].astype(np.float32)
        keys = snap.ids[rows].astype(np.uint64)
        with self._lock:
            if self._ann is None or self._ann_model != snap.model:
                raise Conflict("The similarity index changed meanwhile; try again.")
            found = self._ann.get(keys, dtype="f32")
        if not len(keys) or not isinstance(found, tuple):
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([np.asarray(vector, dtype=np.float32) for vector in found])

    def nearest(self, snap: _Snapshot, row: int, count: int) -> list[tuple[int, float]]:
        """(image id, similarity) of the `count` nearest vectors to row `row`, itself excluded."""
        query = self.vectors_of(snap, np.array([row]))[0]
        with self._lock:
            ann = self._ann if self._ann_model == snap.model else None
            if ann is not None:
                found = ann.search(query, count + 1)
        if ann is None:
            if snap.vectors is None:
                raise Conflict("The similarity index changed meanwhile; try again.")
            wanted = min(count + 1, snap.ids.size)
            found = search(snap.vectors, query, wanted, metric="ip", exact=True)
            keys = snap.ids[np.asarray(found.keys, dtype=np.int64)]
        else:
            keys = np.asarray(found.keys, dtype=np.int64)
        own = int(snap.ids[row])
        pairs = zip(keys.tolist(), np.asarray(found.distances).tolist(), strict=True)
        return [(key, 1.0 - distance) for key, distance in pairs if key != own][:count]

    def _sync_ann(self, snap: _Snapshot, added: _Rows | None) -> None:
        """Keep the graph in step with `snap` (caller holds the lock); start one if worth it."""
        if self._ann is not None and self._ann_model == snap.model:
            self._apply_diff(snap, added)
            return
        if self._ann is not None:  # another model is active now
            self._ann, self._ann_model = None, None
        building = self._building
        if snap.ids.size >= self._ann_min and (building is None or not building.is_alive()):
            self._building = threading.Thread(
                target=self._build, args=(snap,), name="similarity-ann", daemon=True
            )
            self._building.start()

    def _apply_diff(self, snap: _Snapshot, added: _Rows | None) -> None:
        """Remove from the graph what `snap` lost, add what it gained: from `snap`'s vectors,
        or (when the graph holds them) from the rows just read."""
        assert self._ann is not None
        gone = np.setdiff1d(self._ann_ids, snap.ids, assume_unique=True)
        new = np.setdiff1d(snap.ids, self._ann_ids, assume_unique=True)
        for key in gone.tolist():
            self._ann.remove(key)
        if new.size:
            source = snap if snap.vectors is not None else added
            assert source is not None
            assert source.vectors is not None
            rows = np.searchsorted(source.ids, new)
            self._ann.add(new.astype(np.uint64), source.vectors[rows])
        self._ann_ids = snap.ids

    def _build(self, snap: _Snapshot) -> None:
        start = time.perf_counter()
        assert snap.vectors is not None
        try:
            ann = Index(
                ndim=snap.vectors.shape[1],
                metric="ip",
                dtype="f16",
                connectivity=_CONNECTIVITY,
                expansion_add=_EXPANSION_ADD,
                expansion_search=_EXPANSION_SEARCH,
            )
            ann.add(snap.ids.astype(np.uint64), snap.vectors, threads=self._ann_threads)
        except Exception:
            logger.exception("similarity graph build failed; queries stay exact")
            return
        with self._lock:
            current = self._snapshot
            if current is None or current.model != snap.model:
                return
            self._ann, self._ann_model, self._ann_ids = ann, snap.model, snap.ids
            self._apply_diff(current, None)  # what changed while it was built
            # From now on the graph is the one copy of the vectors.
            self._snapshot = replace(current, vectors=None)
        took = time.perf_counter() - start
        logger.info("similarity graph of %d vectors built in %.1f s", snap.ids.size, took)


def _embedded(model: str) -> ColumnElement[bool]:
    # The vector itself too: the index reads its bytes (written with the model id, in one
    # statement, by the pipeline).
    return readiness.is_embedded_sql(model) & Image.features.is_not(None)


def _read_vectors(session: Session, model: str, ids: Sequence[int] | None) -> _Rows:
    query = select(Image.id, Image.features).where(_embedded(model)).order_by(Image.id)
    if ids is None:
        # In chunks, each turned into float16 at once: the float32 bytes of the whole library
        # (300 MB at 200k x 384) are never held together.
        chunks = session.execute(query.execution_options(yield_per=_READ_CHUNK * 10))
        return _Rows.concat([_Rows.of(part) for part in chunks.partitions()])
    parts = [
        _Rows.of(session.execute(query.where(Image.id.in_(ids[i : i + _READ_CHUNK]))).all())
        for i in range(0, len(ids), _READ_CHUNK)
    ]
    return _Rows.concat(parts)


@dataclass(frozen=True, slots=True)
class _Rows:
    ids: NDArray[np.int64]
    vectors: NDArray[np.float16]

    @staticmethod
    def of(rows: Sequence[tuple[int, bytes | None]]) -> _Rows:
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return _Rows(ids, np.zeros((0, 0), dtype=np.float16))
        flat = np.frombuffer(b"".join(row[1] or b"" for row in rows), dtype=np.float32)
        return _Rows(ids, flat.reshape(len(rows), -1).astype(np.float16))

    @staticmethod
    def concat(parts: list[_Rows]) -> _Rows:
        parts = [part for part in parts if part.ids.size]
        if not parts:
            return _Rows(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float16))
        return _Rows(np.concatenate([p.ids for p in parts]), np.vstack([p.vectors for p in parts]))


def _loaded(session: Session, model: str, version: int) -> _Snapshot:
    rows = _read_vectors(session, model, None)
    return _Snapshot(model, version, rows.ids, rows.vectors)


def _refreshed(session: Session, old: _Snapshot, version: int) -> tuple[_Snapshot, _Rows]:
    """`old` brought to `version`: drop the ids no longer embedded, read the new ones (also
    returned, for the graph).

    A vector never changes in place: the same file through the same model id gives the same
    vector, and another model or precision is another id (another snapshot)."""
    ids = np.asarray(
        session.scalars(select(Image.id).where(_embedded(old.model)).order_by(Image.id)).all(),
        dtype=np.int64,
    )
    keep = np.isin(old.ids, ids, assume_unique=True)
    new_ids = np.setdiff1d(ids, old.ids, assume_unique=True)
    added = _read_vectors(session, old.model, new_ids.tolist())
    if keep.all() and not added.ids.size:
        return replace(old, version=version), added
    merged_ids = np.concatenate([old.ids[keep], added.ids])
    order = np.argsort(merged_ids, kind="stable")
    if old.vectors is None:  # the graph holds the vectors
        return _Snapshot(old.model, version, merged_ids[order], None), added
    if not old.ids.size:
        return _Snapshot(old.model, version, added.ids, added.vectors), added
    kept = old.vectors[keep]
    merged = np.vstack([kept, added.vectors]) if added.ids.size else kept
    return _Snapshot(old.model, version, merged_ids[order], merged[order]), added


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
    if not readiness.is_embedded(image.embedding_model, active_model):
        raise Conflict(
            f"Image {image_id} has no embedding from the active model yet; try again shortly."
        )
    if batch_id is not None and crud_batch.get_batch(session, batch_id, with_images=False) is None:
        raise NotFound(f"Batch {batch_id} not found.")

    snap = index.snapshot(session, active_model)
    row = int(np.searchsorted(snap.ids, image_id))
    if row >= snap.ids.size or snap.ids[row] != image_id:
        raise Conflict(f"Image {image_id} has no embedding from the active model yet.")
    if batch_id is None:
        ranked = index.nearest(snap, row, limit + _SLACK)
    else:
        ranked = _nearest_within(session, index, snap, row, batch_id, limit + _SLACK)
    # An image deleted since the snapshot was taken is simply skipped.
    found = {i.id: i for i in crud_image.get_images(session, [key for key, _ in ranked])}
    return [(found[key], sim) for key, sim in ranked if key in found][:limit]


def _nearest_within(
    session: Session, index: EmbeddingIndex, snap: _Snapshot, row: int, batch_id: int, count: int
) -> list[tuple[int, float]]:
    members = np.fromiter(crud_batch.member_ids(session, batch_id), dtype=np.int64)
    rows = np.flatnonzero(np.isin(snap.ids, members) & (snap.ids != snap.ids[row]))
    if rows.size == 0:
        return []
    # Vectors are stored L2-normalised, so the dot product is the cosine similarity.
    similarity = index.vectors_of(snap, rows) @ index.vectors_of(snap, np.array([row]))[0]
    count = min(count, rows.size)
    top = np.argpartition(-similarity, count - 1)[:count]
    top = top[np.argsort(-similarity[top], kind="stable")]
    return [(int(snap.ids[rows[k]]), float(similarity[k])) for k in top]
