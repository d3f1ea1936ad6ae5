"""Similar-images query at library scale: the HNSW index against the former brute force.

The index (float16 + usearch HNSW) against the former brute force (float32 matrix, one
matrix-vector product per query), in the same run.

    python -m bench.similar [--images 200000] [--dim 384] [--queries 200]

Uses DATABASE_URL when set (e.g. a scratch PostgreSQL database), else a temporary SQLite file.
Vectors are photo-like: bursts of near-duplicates around shared scenes, plus singles.
Timed = the service call `similar_images` (image lookup, version check, search, rows of the
results), as the route runs it, without HTTP.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from crud import crud_image
from database.database import create_db_engine, create_session_factory
from database.migrations import upgrade_to_head
from database.models import Image
from services.similarity_service import EmbeddingIndex, similar_images

MODEL = "bench-model"
TARGET = "p50 <= 20 ms after the first query at 200k; index memory ~ the vectors' size"


def photo_like(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit rows: scenes, bursts of shots around each, and a tail of unrelated singles."""
    rng = np.random.default_rng(seed)
    scenes = rng.normal(size=(max(1, n // 200), dim))
    bursts = scenes[rng.integers(0, len(scenes), max(1, n // 8))]
    bursts += 0.6 * rng.normal(size=bursts.shape)
    rows = bursts[rng.integers(0, len(bursts), n)] + 0.25 * rng.normal(size=(n, dim))
    singles = rng.random(n) < 0.1
    rows[singles] = rng.normal(size=(int(singles.sum()), dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def fill(factory, vectors: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    rows = (
        {
            "filename": f"{i:032x}.jpg",
            "original_filename": f"{i}.jpg",
            "file_path": f"images/{i:032x}.jpg",
            "image_hash": f"{i:064x}",
            "file_size": 1,
            "mime_type": "image/jpeg",
            "has_thumbnail": True,
            "features": vectors[i].tobytes(),
            "embedding_model": MODEL,
        }
        for i in range(len(vectors))
    )
    with factory() as session, session.begin():
        chunk: list[dict[str, object]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == 5000:
                session.execute(insert(Image), chunk)
                chunk = []
        if chunk:
            session.execute(insert(Image), chunk)


def brute_force(session: Session, matrix: np.ndarray, ids: np.ndarray, image_id: int) -> list[int]:
    """What the route did before: a (count, max id) check, then one float32 product."""
    embedded = (Image.embedding_model == MODEL) & Image.features.is_not(None)
    session.execute(select(func.count(), func.max(Image.id)).where(embedded)).one()
    crud_image.get_image(session, image_id)
    position = int(np.searchsorted(ids, image_id))
    similarity = matrix @ matrix[position]
    similarity[position] = -2.0
    top = np.argpartition(-similarity, 10)[:10]
    top = top[np.argsort(-similarity[top])]
    crud_image.get_images(session, ids[top].tolist())
    return ids[top].tolist()


def rss_mb() -> float:
    """Current resident set size (not the peak: filling the database peaks higher)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(timings: list[float]) -> str:
    ms = np.asarray(timings) * 1000
    return f"p50 {np.percentile(ms, 50):6.2f} ms, p99 {np.percentile(ms, 99):6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    print(f"command: python -m bench.similar {' '.join(sys.argv[1:])}".rstrip())
    print(f"target: {TARGET}")

    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade_to_head(url)
        factory = create_session_factory(create_db_engine(url))
        vectors = photo_like(args.images, args.dim)
        start = time.perf_counter()
        fill(factory, vectors)
        print(
            f"database: {url.split(':', 1)[0]}, {args.images} images x {args.dim}-d "
            f"(filled in {time.perf_counter() - start:.0f} s)"
        )
        with factory() as session:
            ids = np.asarray(session.scalars(select(Image.id).order_by(Image.id)).all())
        rng = np.random.default_rng(1)
        queries = rng.choice(ids, size=args.queries, replace=False).tolist()
        rss_before = rss_mb()

        index = EmbeddingIndex()
        with factory() as session:
            start = time.perf_counter()
            similar_images(session, index, queries[0], MODEL, 10, None)
            first = time.perf_counter() - start
            exact_timings, exact_results = [], {}
            for image_id in queries[1:]:
                start = time.perf_counter()
                found = similar_images(session, index, image_id, MODEL, 10, None)
                exact_timings.append(time.perf_counter() - start)
                exact_results[image_id] = [image.id for image, _ in found]
                session.rollback()
                if index.ann_ready():
                    break
            start = time.perf_counter()
            index.wait_for_ann()
            build_wait = time.perf_counter() - start
            ann_timings, recall = [], []
            for image_id in queries[1:]:
                start = time.perf_counter()
                found = similar_images(session, index, image_id, MODEL, 10, None)
                ann_timings.append(time.perf_counter() - start)
                session.rollback()
                if image_id in exact_results:
                    got = {image.id for image, _ in found}
                    recall.append(len(got & set(exact_results[image_id])) / 10)
        with factory() as session:
            snap = index.snapshot(session, MODEL)
        graph = index._ann.memory_usage if index._ann is not None else 0  # bench looks inside
        rss_after = rss_mb()

        # The former route, same vectors, same database.
        matrix = vectors.copy()
        brute_timings = []
        with factory() as session:
            # Fewer: each one scans the table for its (count, max id) key.
            for image_id in queries[1:31]:
                start = time.perf_counter()
                brute_force(session, matrix, ids, image_id)
                brute_timings.append(time.perf_counter() - start)
                session.rollback()

    f32_mb = args.images * args.dim * 4 / 1e6
    exact_p50 = np.percentile(exact_timings, 50) if exact_timings else float("nan")
    print(f"first query (reads {args.images} vectors from the database): {first * 1000:.0f} ms")
    print(
        f"exact float16 scan while the graph builds ({len(exact_timings)} queries): "
        f"{percentiles(exact_timings) if exact_timings else 'n/a'}"
    )
    print(f"HNSW graph ready {build_wait:.0f} s after the exact queries (background thread)")
    print(f"index (HNSW, limit=10):       {percentiles(ann_timings)}")
    print(f"former brute force (float32): {percentiles(brute_timings)}")
    print(
        f"speed-up p50: {np.percentile(brute_timings, 50) / np.percentile(ann_timings, 50):.1f}x"
        f" (exact float16 scan: {np.percentile(brute_timings, 50) / exact_p50:.1f}x)"
    )
    if recall:
        print(f"recall@10 of the graph against the exact scan: {np.mean(recall):.3f}")
    copy = snap.vectors.nbytes if snap.vectors is not None else 0
    print(
        f"memory: float32 vectors {f32_mb:.0f} MB (the former index); now float16 copy "
        f"{copy / 1e6:.0f} MB (dropped once the graph holds the vectors) + HNSW graph "
        f"{graph / 1e6:.0f} MB = {(copy + graph) / 1e6:.0f} MB "
        f"({(copy + graph) / 1e6 / f32_mb:.2f}x the float32 vectors); "
        f"process RSS grew {rss_after - rss_before:.0f} MB over the index part"
    )


if __name__ == "__main__":
    main()
