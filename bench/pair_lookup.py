"""What finding a RAW+JPEG partner adds to each stored file, in a large library.

A scratch PostgreSQL database is filled with `--images` image rows (a shoot of one body every
2 s, names IMG_0000.JPG...), then, in interleaved rounds, each of `--lookups` files is looked up
the way an upload does before it is stored: by hash (what every upload did already) and then
by pair (services/companions.attach_to_partner's candidate query by stem and its rule, no
partner found), and by the first version's query (capture-time window, LIKE on the name).
Reports ms per file of each and their ratios.

    python -m bench.pair_lookup --images 50000 --lookups 300
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from bench.scratch import scratch_postgres
from crud import crud_image
from database.models import Image
from processing.metadata_extraction import ImageMetadata
from processing.pairing import CANDIDATE_WINDOW, is_pair, pair_stem
from services.companions import file_key, image_key

START = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)


def _rows(count: int) -> list[dict[str, object]]:
    return [
        {
            "filename": f"{n:032x}.jpg",
            "original_filename": f"IMG_{n % 10000:04d}.JPG",
            "file_path": f"images/{n:032x}.jpg",
            "image_hash": hashlib.sha256(str(n).encode()).hexdigest(),
            "file_size": 1000,
            "mime_type": "image/jpeg",
            "has_thumbnail": True,
            "shot_at": START + timedelta(seconds=2 * n),
            "camera_make": "Testmaker",
            "camera_model": "Body",
            "camera_serial": "SN-1",
        }
        for n in range(count)
    ]


def _lookup_pair(session: Session, n: int) -> int:
    """How many candidates the rule looked at (none is a partner: another body)."""
    metadata = ImageMetadata(
        shot_at=START + timedelta(seconds=2 * n + 1),
        camera_make="Testmaker",
        camera_model="Body",
        camera_serial="SN-2",  # another body: no partner, the whole rule runs
    )
    key = file_key(f"IMG_{n % 10000:04d}.CR2", "image/x-canon-cr2", metadata)
    assert key.shot_at is not None
    candidates = crud_image.pair_candidates(
        session, pair_stem(key.filename), key.shot_at, CANDIDATE_WINDOW
    )
    assert not any(is_pair(image_key(candidate), key) for candidate in candidates)
    return len(candidates)


def _lookup_by_time(session: Session, n: int) -> int:
    """The first version's candidate query (landed in 3c12435): every image of the +-14 h
    window, filtered by a LIKE on the lower-cased name."""
    shot_at = START + timedelta(seconds=2 * n + 1)
    pattern = f"img\\_{n % 10000:04d}.%"
    query = select(Image).where(
        Image.companion_hash.is_(None),
        Image.shot_at.between(shot_at - CANDIDATE_WINDOW, shot_at + CANDIDATE_WINDOW),
        func.lower(Image.original_filename).like(pattern, escape="\\"),
    )
    return len(session.scalars(query).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--lookups", type=int, default=300)
    args = parser.parse_args()
    with scratch_postgres(migrate=True) as url:
        engine = create_engine(url)
        with Session(engine) as session:
            rows = _rows(args.images)
            for start in range(0, len(rows), 5000):
                session.execute(insert(Image), rows[start : start + 5000])
            session.commit()
            session.execute(text("ANALYZE image_clustering.images"))
            session.commit()
        by_hash: list[float] = []
        by_pair: list[float] = []
        by_time: list[float] = []
        step = max(1, args.images // args.lookups)
        candidates = 0
        with Session(engine) as session:
            for n in range(0, args.images, step)[: args.lookups]:
                session.expunge_all()
                began = time.perf_counter()
                unknown = hashlib.sha256(f"new{n}".encode()).hexdigest()
                crud_image.get_image_by_hash(session, unknown)
                by_hash.append(time.perf_counter() - began)
                session.expunge_all()
                began = time.perf_counter()
                candidates += _lookup_pair(session, n)
                by_pair.append(time.perf_counter() - began)
                session.expunge_all()
                began = time.perf_counter()
                assert _lookup_by_time(session, n) > 0
                by_time.append(time.perf_counter() - began)
        engine.dispose()
    hash_ms = statistics.median(by_hash) * 1000
    pair_ms = statistics.median(by_pair) * 1000
    time_ms = statistics.median(by_time) * 1000
    print(f"python -m bench.pair_lookup --images {args.images} --lookups {args.lookups}")
    print(f"{args.images} images; median per file over {len(by_pair)} files (interleaved):")
    print(f"  lookup by hash (every upload, before): {hash_ms:.2f} ms")
    print(f"  candidates read per file: {candidates / len(by_pair):.1f}")
    print(f"  partner lookup by stem (now): {pair_ms:.2f} ms ({pair_ms / hash_ms:.2f}x by hash)")
    print(f"  candidates by capture time (before): {time_ms:.2f} ms ({time_ms / hash_ms:.2f}x)")
    print(f"  by stem / by capture time: {pair_ms / time_ms:.3f}")


if __name__ == "__main__":
    main()
