"""Similar-images query time over a large library (one matrix product over all vectors).

    python -m bench.similar [--images 50000] [--dim 384]

Uses DATABASE_URL when set (e.g. a scratch PostgreSQL database), else a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from database.database import create_db_engine, create_session_factory
from database.migrations import upgrade_to_head
from database.models import Image
from services.similarity_service import EmbeddingIndex, similar_images

MODEL = "bench-model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade_to_head(url)
        factory = create_session_factory(create_db_engine(url))
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(args.images, args.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = [
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
            for i in range(args.images)
        ]
        with factory() as session, session.begin():
            for start in range(0, len(rows), 5000):
                session.execute(insert(Image), rows[start : start + 5000])
        timings = []
        index = EmbeddingIndex()
        with factory() as session:
            start = time.perf_counter()
            found = similar_images(session, index, 1, MODEL, 10, None)
            first = time.perf_counter() - start
            for repeat in range(args.repeats):
                start = time.perf_counter()
                found = similar_images(session, index, repeat + 2, MODEL, 10, None)
                timings.append(time.perf_counter() - start)
                session.rollback()
        assert len(found) == 10
    print(f"command: python -m bench.similar {' '.join(sys.argv[1:])}".rstrip())
    print(f"database: {url.split(':', 1)[0]}, {args.images} images x {args.dim}-d")
    print(f"first query (loads the vectors into memory): {first * 1000:.0f} ms")
    print(
        f"next queries (limit=10): median {statistics.median(timings) * 1000:.0f} ms "
        f"(min {min(timings) * 1000:.0f}, max {max(timings) * 1000:.0f})"
    )


if __name__ == "__main__":
    main()
