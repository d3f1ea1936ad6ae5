"""GET /images/?limit=100 latency while the server embeds uploads and while it analyses 50k rows.

Run by hand, never in the tests:
    python -m bench.api_latency_during_work                      # 1 round, 32 uploads, 50k rows
    python -m bench.api_latency_during_work --rounds 2 --uploads 32 --rows 50000
    python -m bench.api_latency_during_work --code /tmp/main,. --configs process --rounds 3

One scratch PostgreSQL database (bench/scratch.py), a random-weight DINOv3 ViT-S/16 (the
default model's shape and cost, bench/embedding.py), and a real `uvicorn api.main:app` started
afresh for each code tree (--code: two trees compare two versions of the server) and each
configuration, in turn, interleaved round by round in the same run. The configurations are
EMBEDDING_ISOLATION values: `thread` (the model on the worker's thread of the API process, as
before) and `process` (the model in a process of its own, the default now). For each server:
`--uploads` 1600x1200 JPEGs posted in one request, then another client polls
`GET /images/?limit=100` every 50 ms until every image has its thumbnail, quality and vector
("embedding"); then `PUT /batches/{id}/analyze` of `--rows` rows inserted with vectors
("analysis"). p50/p99/max per phase; the ratios compare each to the first server.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bench.analyze_scale import insert_photo_like
from bench.embedding import save_vits16
from bench.ingest import read_while
from bench.scratch import running_server, scratch_postgres
from database.models import ImageBatch
from processing.quality import QUALITY_VERSION
from tests.factories import jpeg_bytes

POLL_SECONDS = 0.05

# EMBEDDING_ISOLATION of each configuration: the model on the worker's thread of the API
# process (before), or in a process of its own (now).
CONFIGS = ("thread", "process")


def _embed_uploads(base: str, photos: list[bytes]) -> None:
    with httpx.Client(base_url=base, timeout=600) as client:
        files = [("files", (f"{uuid.uuid4().hex}.jpg", data, "image/jpeg")) for data in photos]
        client.post("/images/upload", files=files).raise_for_status()
        while True:
            health = client.get("/health").json()
            if health["pending_embeddings"] + health["pending_thumbnails"] == 0:
                if health["queued"] == 0:
                    return
            time.sleep(0.1)


def _figures(latencies: list[float]) -> tuple[float, float, float, int]:
    p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
    return p50, p99, max(latencies) * 1000, len(latencies)


def _one_server(
    url: str, code: Path, model_dir: Path, scratch_dir: Path, name: str, seed: int, args: Any
) -> dict[str, list[float]]:
    """Both phases against a new server from tree `code` in configuration `name`; latencies
    by phase."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "STORAGE_ROOT": str(scratch_dir / "storage"),
        "EMBEDDING_MODEL": str(model_dir),
        "EMBEDDING_DEVICE": "cpu",
        "EMBEDDING_ISOLATION": name,
        "API_KEY": "",
    }
    photos = [jpeg_bytes((1600, 1200), seed=seed + n) for n in range(args.uploads)]
    with running_server(code, env, scratch_dir / "server.log") as base:
        start = time.perf_counter()
        embedding = read_while(base, functools.partial(_embed_uploads, base, photos), POLL_SECONDS)
        print(f"{name}: {args.uploads} uploads processed in {time.perf_counter() - start:.1f} s")
        batch_id = _analysis_batch(url, base, args.rows)
        analyze = functools.partial(
            httpx.put, f"{base}/batches/{batch_id}/analyze", json={}, timeout=3600
        )
        start = time.perf_counter()
        analysis = read_while(base, lambda: analyze().raise_for_status(), POLL_SECONDS)
        print(f"{name}: analysis of {args.rows} rows in {time.perf_counter() - start:.1f} s")
    return {"embedding": embedding, "analysis": analysis}


def _analysis_batch(url: str, base: str, rows: int) -> int:
    """The batch of `rows` embedded rows (made by the first server that asks)."""
    engine = create_engine(url)
    with Session(engine) as session:
        named = select(ImageBatch.id).where(ImageBatch.batch_name == "bench-analysis")
        existing = session.scalar(named)
    engine.dispose()
    if existing is not None:
        return existing
    model = httpx.get(f"{base}/health").json()["model"]["active_model"]
    # Finished rows (thumbnail and quality current): no later server's start-up queues them.
    ids = insert_photo_like(url, rows, model, has_thumbnail=True, quality_version=QUALITY_VERSION)
    batch = {"name": "bench-analysis", "image_ids": ids}
    created = httpx.post(f"{base}/batches/", json=batch, timeout=600)
    created.raise_for_status()
    return int(created.json()["id"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--uploads", type=int, default=32)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--code", default=".", help="comma-separated server code trees")
    args = parser.parse_args(argv)
    print(
        "command: python -m bench.api_latency_during_work "
        + shlex.join(sys.argv[1:] if argv is None else argv)
        + f"   (load {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)",
        flush=True,
    )
    trees = [Path(code).resolve() for code in args.code.split(",")]
    servers = [
        (f"{tree.name}/{name}" if len(trees) > 1 else name, tree, name)
        for tree in trees
        for name in args.configs.split(",")
    ]
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch_dir, scratch_postgres(migrate=True) as url:
        model_dir = save_vits16(Path(scratch_dir) / "vits16")
        for round_no in range(args.rounds):
            for at, (label, tree, name) in enumerate(servers):
                by_phase = _one_server(
                    url,
                    tree,
                    model_dir,
                    Path(scratch_dir),
                    name,
                    seed=10_000 * round_no + 1000 * at,
                    args=args,
                )
                for phase, latencies in by_phase.items():
                    results.setdefault((label, phase), []).extend(latencies)
                    p50, p99, worst, count = _figures(latencies)
                    print(
                        f"round {round_no + 1} {label:16} {phase:9}: p50 {p50:5.0f} ms, p99 "
                        f"{p99:5.0f} ms, max {worst:5.0f} ms, {count} requests "
                        f"(load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
    print("all rounds:")
    first = servers[0][0]
    for phase in ("embedding", "analysis"):
        before = _figures(results[(first, phase)])
        for label, _, _ in servers:
            p50, p99, worst, count = _figures(results[(label, phase)])
            print(
                f"  {phase:9} {label:16}: p50 {p50:5.0f} ms, p99 {p99:5.0f} ms, max "
                f"{worst:5.0f} ms, {count} requests; p50 {p50 / before[0]:.2f}x, "
                f"p99 {p99 / before[1]:.2f}x {first}"
            )


if __name__ == "__main__":
    main()
