"""Cull time of a real server: POST /batches/{id}/cull on a 2,000-image analysed batch.

    python -m bench.cull [--db postgres|sqlite|both] [--images 2000] [--repeats 7]

A real `uvicorn api.main:app` process (offline encoder) on a scratch PostgreSQL database
(bench/scratch.py) or a SQLite file. Rows are inserted directly, as an analysis leaves them:
groups of 8 ranked frames, a tenth Ungrouped, every 20th group a bracket (kept whole), and
the photographer's decisions on 2% of the images (keeps and rejects, never overwritten). Timed:
the whole HTTP request for 15% of the batch, 15% with at least one per group, and a count of
300 (each call replaces the judge's decisions of the call before). Target: <= 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import update

from bench.batch_reads import fresh_database, insert_batch, insert_library, running_server
from database.database import create_db_engine
from database.models import ImageBatchAssociation

TARGET_SECONDS = 2.0
MODEL = "efficientnet-lite0+mac"


def prepare(url: str, images: int) -> int:
    """The batch id of an analysed batch of `images` images with a few user decisions."""
    ids = insert_library(url, MODEL)[:images]
    batch_id = insert_batch(url, "cull", ids)
    a = ImageBatchAssociation
    engine = create_db_engine(url)
    with engine.begin() as conn:
        grouped = a.group_label != "Ungrouped"
        conn.execute(
            update(a)
            .where(a.batch_id == batch_id, grouped)
            .values(group_kind="burst", suggested_rank=a.quality_rank)
        )
        conn.execute(
            update(a)
            .where(a.batch_id == batch_id, ~grouped)
            .values(quality_rank=1, suggested_rank=1)
        )
        for n in range(0, len(ids) // 8, 20):  # every 20th group: a bracket, all rank 1
            conn.execute(
                update(a)
                .where(a.batch_id == batch_id, a.group_label == f"Group {n + 1}")
                .values(group_kind="bracket", quality_rank=1)
            )
        for k, image_id in enumerate(ids[::50]):
            conn.execute(
                update(a)
                .where(a.batch_id == batch_id, a.image_id == image_id)
                .values(pick="keep" if k % 2 else "reject", decided_by="user")
            )
    engine.dispose()
    return batch_id


def run(kind: str, images: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, fresh_database(kind, Path(tmp)) as url:
        batch_id = prepare(url, images)
        with (
            running_server(url, Path(tmp) / "assets") as base,
            httpx.Client(base_url=base, timeout=60) as client,
        ):
            for label, body in (
                ("share 15%", {"share": 0.15}),
                ("share 15%, one per group", {"share": 0.15, "at_least_one_per_group": True}),
                ("count 300", {"count": 300}),
            ):
                times, answer = [], {}
                for _ in range(repeats):
                    start = time.perf_counter()
                    response = client.post(f"/batches/{batch_id}/cull", json=body)
                    times.append(time.perf_counter() - start)
                    response.raise_for_status()
                    answer = response.json()
                worst = max(times)
                print(
                    f"{kind:8} {images} images, {label:26} median {statistics.median(times):.3f} s"
                    f"  max {worst:.3f} s  (target <= {TARGET_SECONDS:g} s: "
                    f"{'met' if worst <= TARGET_SECONDS else 'MISSED'})  selected "
                    f"{len(answer['selected'])} of target {answer['target']}, groups covered "
                    f"{answer['groups_covered']}/{answer['groups']}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("postgres", "sqlite", "both"), default="postgres")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"# python -m bench.cull --db {args.db} --images {args.images} --repeats {args.repeats}"
        f"  (commit {commit}, 2 shared cores)"
    )
    for kind in ("postgres", "sqlite") if args.db == "both" else (args.db,):
        run(kind, args.images, args.repeats)


if __name__ == "__main__":
    main()
