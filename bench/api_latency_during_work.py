"""GET /images/?limit=100 latency while the server embeds uploads and while it analyses 50k rows.

Run by hand, never in the tests:
    python -m bench.api_latency_during_work                      # 1 round, 32 uploads, 50k rows
    python -m bench.api_latency_during_work --rounds 2 --uploads 32 --rows 50000

One scratch PostgreSQL database (bench/scratch.py), a random-weight DINOv3 ViT-S/16 (the
default model's shape and cost, bench/embedding.py), and a real `uvicorn api.main:app` started
afresh for each configuration, in turn, in the same run: `thread` (EMBEDDING_ISOLATION=thread,
the model on the worker's thread of the API process, as before) and `process` (the model in a
process of its own, the default now). For each: `--uploads` 1600x1200 JPEGs posted in one
request, then another client polls `GET /images/?limit=100` every 50 ms until every image has
its thumbnail, quality and vector ("embedding"); then `PUT /batches/{id}/analyze` of `--rows`
rows inserted with vectors ("analysis"). p50/p99/max per phase; the ratios compare each to
`thread`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bench.analyze_scale import insert_photo_like
from bench.embedding import save_vits16
from bench.ingest import read_while
from bench.scratch import scratch_postgres
from database.models import ImageBatch
from processing.quality import QUALITY_VERSION
from tests.factories import jpeg_bytes

POLL_SECONDS = 0.05

# EMBEDDING_ISOLATION of each configuration: the model on the worker's thread of the API
# process (before), or in a process of its own (now).
CONFIGS = ("thread", "process")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(env: dict[str, str]) -> Iterator[str]:
    port = str(_free_port())
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", port]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=5).json()["model"]["loaded"]:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=300)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


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
    url: str, model_dir: Path, storage: Path, name: str, seed: int, uploads: int, rows: int
) -> dict[str, list[float]]:
    """Both phases against a new server in configuration `name`; latencies by phase."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "STORAGE_ROOT": str(storage),
        "EMBEDDING_MODEL": str(model_dir),
        "EMBEDDING_DEVICE": "cpu",
        "EMBEDDING_ISOLATION": name,
        "API_KEY": "",
    }
    photos = [jpeg_bytes((1600, 1200), seed=seed + n) for n in range(uploads)]
    with _server(env) as base:
        start = time.perf_counter()
        embedding = read_while(base, functools.partial(_embed_uploads, base, photos), POLL_SECONDS)
        print(f"{name}: {uploads} uploads processed in {time.perf_counter() - start:.1f} s")
        batch_id = _analysis_batch(url, base, rows)
        analyze = functools.partial(
            httpx.put, f"{base}/batches/{batch_id}/analyze", json={}, timeout=3600
        )
        analysis = read_while(base, lambda: analyze().raise_for_status(), POLL_SECONDS)
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
    args = parser.parse_args(argv)
    print(
        "command: python -m bench.api_latency_during_work "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        flush=True,
    )
    names = args.configs.split(",")
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch_dir, scratch_postgres(migrate=True) as url:
        model_dir = save_vits16(Path(scratch_dir) / "vits16")
        for round_no in range(args.rounds):
            for at, name in enumerate(names):
                by_phase = _one_server(
                    url,
                    model_dir,
                    Path(scratch_dir) / "storage",
                    name,
                    seed=10_000 * round_no + 1000 * at,
                    uploads=args.uploads,
                    rows=args.rows,
                )
                for phase, latencies in by_phase.items():
                    results.setdefault((name, phase), []).extend(latencies)
                    p50, p99, worst, count = _figures(latencies)
                    print(
                        f"round {round_no + 1} {name:12} {phase:9}: p50 {p50:5.0f} ms, p99 "
                        f"{p99:5.0f} ms, max {worst:5.0f} ms, {count} requests "
                        f"(load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
    print("all rounds:")
    for phase in ("embedding", "analysis"):
        before = results.get(("thread", phase))
        for name in names:
            p50, p99, worst, count = _figures(results[(name, phase)])
            ratio = f", p99 {p99 / _figures(before)[1]:.2f}x thread" if before else ""
            print(
                f"  {phase:9} {name:12}: p50 {p50:5.0f} ms, p99 {p99:5.0f} ms, max "
                f"{worst:5.0f} ms, {count} requests{ratio}"
            )


if __name__ == "__main__":
    main()
