"""Read latency of a real server: the batch page, the batch list, the image list under uploads.

    python -m bench.batch_reads [--db both|postgres|sqlite] [--quick]

A real `uvicorn api.main:app` process (offline encoder) on a fresh PostgreSQL database
(TEST_POSTGRES_URL, default postgres@127.0.0.1:5432) and on a SQLite file. Rows are inserted
directly (5,000 embedded, ranked images; 20 batches x 2,500 for the list, then a 2,000 and a
5,000 batch), so the set-up takes seconds. Each figure is printed next to its target.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from PIL import Image as PILImage
from sqlalchemy import insert, select

from bench import scratch
from bench.scratch import scratch_postgres
from database.database import create_db_engine
from database.migrations import upgrade_to_head
from database.models import Image, ImageBatch, ImageBatchAssociation

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LIBRARY = 5_000
LIST_BATCHES, LIST_BATCH_SIZE = 20, 2_500


@contextmanager
def running_server(
    database_url: str, storage: Path, checkout: Path = PROJECT_ROOT
) -> Iterator[str]:
    """The URL of `uvicorn api.main:app` of `checkout` (default this one) with the offline
    encoder on `database_url`, once its model is loaded (bench.scratch.running_server)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STORAGE_ROOT": str(storage),
        "EMBEDDING_MODEL": "efficientnet-lite0",
        "EMBEDDING_DEVICE": "cpu",
        "TORCH_THREADS": "1",
        "API_KEY": "",
    }
    with scratch.running_server(checkout, env, storage.parent / "server.log") as url:
        yield url


@contextmanager
def fresh_database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'bench.db'}"
        upgrade_to_head(url)
        yield url
        return
    with scratch_postgres() as url:
        upgrade_to_head(url)
        yield url


def insert_library(url: str, model: str) -> list[int]:
    """5,000 images as the worker would leave them: thumbnail, quality, embedding."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(LIBRARY, 1280)).astype(np.float32)
    start = datetime(2026, 6, 6, 14, 0, tzinfo=UTC)
    rows = [
        {
            "filename": f"{uuid.UUID(int=i + 1).hex}.jpg",
            "original_filename": f"IMG_{i:05d}.JPG",
            "file_path": f"images/{uuid.UUID(int=i + 1).hex}.jpg",
            "image_hash": f"{i + 1:064x}",
            "file_size": 6_000_000 + i,
            "mime_type": "image/jpeg",
            "has_thumbnail": True,
            "features": vectors[i].tobytes(),
            "embedding_model": model,
            "width": 6000,
            "height": 4000,
            "orientation": 1,
            "shot_at": start + timedelta(seconds=i * 0.4),
            "camera_make": "Canon",
            "camera_model": "EOS R6",
            "lens_model": "RF24-70mm F2.8 L IS USM",
            "focal_length": "50mm",
            "f_number": 2.8,
            "exposure_time": "1/250",
            "iso": 400,
            "quality_score": float(rng.random()),
            "sharpness": float(rng.random()),
            "exposure": float(rng.random()),
        }
        for i in range(LIBRARY)
    ]
    engine = create_db_engine(url)
    with engine.begin() as conn:
        for at in range(0, len(rows), 1000):
            conn.execute(insert(Image), rows[at : at + 1000])
        ids = list(conn.scalars(select(Image.id).order_by(Image.id)))
    engine.dispose()
    return ids


def insert_batch(url: str, name: str, image_ids: list[int]) -> int:
    """An analysed batch: groups of ~8 images, ranked, a tenth ungrouped."""
    engine = create_db_engine(url)
    with engine.begin() as conn:
        batch_id = conn.execute(
            insert(ImageBatch).returning(ImageBatch.id),
            {
                "batch_name": name,
                "status": "complete",
                "parameters": {"min_cluster_size": 5, "min_samples": 5, "metric": "cosine"},
            },
        ).scalar_one()
        rows = []
        for n, image_id in enumerate(image_ids):
            ungrouped = n % 10 == 9
            rows.append(
                {
                    "batch_id": batch_id,
                    "image_id": image_id,
                    "group_label": "Ungrouped" if ungrouped else f"Group {n // 8 + 1}",
                    "quality_rank": None if ungrouped else n % 8 + 1,
                }
            )
        for at in range(0, len(rows), 5000):
            conn.execute(insert(ImageBatchAssociation), rows[at : at + 5000])
    engine.dispose()
    return int(batch_id)


def timed(client: httpx.Client, path: str) -> tuple[float, int]:
    start = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, len(response.content)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sequential(client: httpx.Client, path: str, repeats: int) -> tuple[list[float], int]:
    timed(client, path)  # warm-up
    results = [timed(client, path) for _ in range(repeats)]
    return [t for t, _ in results], results[-1][1]


def concurrent(url: str, path: str, clients: int, each: int) -> tuple[list[float], float, int]:
    """Latencies of the answered requests, answered req/s, and how many failed."""
    failures = 0

    def one(_n: int) -> list[float]:
        nonlocal failures
        latencies = []
        with httpx.Client(base_url=url, timeout=120) as client:
            for _ in range(each):
                try:
                    latencies.append(timed(client, path)[0])
                except httpx.HTTPError:
                    failures += 1
        return latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for batch in pool.map(one, range(clients)) for t in batch]
    return latencies, len(latencies) / (time.perf_counter() - start), failures


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(pixels).resize((640, 480)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def while_uploading(url: str, action: Callable[[], list[float]]) -> tuple[list[float], int]:
    """Run `action` while two clients upload one new JPEG after another."""
    stop = threading.Event()
    uploaded = [0, 0]

    def uploader(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            seed = 10_000 * (n + 1)
            while not stop.is_set() and uploaded[n] < 400:
                seed += 1
                files = [("files", (f"u{seed}.jpg", jpeg(seed), "image/jpeg"))]
                client.post("/images/upload", files=files).raise_for_status()
                uploaded[n] += 1

    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        result = action()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return result, sum(uploaded)


def line(figure: str, value: str, target: str) -> None:
    print(f"{figure:<58} | {value:<34} | {target}", flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def run(kind: str, quick: bool) -> None:
    repeats = 8 if quick else 25
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with fresh_database(kind, tmp) as url, running_server(url, tmp / "assets") as base:
            health = httpx.get(f"{base}/health", timeout=30).json()
            model = health["model"]["active_model"] or health["model"]["configured_model"]
            ids = insert_library(url, model)
            for n in range(LIST_BATCHES):
                chosen = ids[(n * 250) % LIBRARY :] + ids[: (n * 250) % LIBRARY]
                insert_batch(url, f"list {n}", chosen[:LIST_BATCH_SIZE])
            print(
                f"\n== {kind}: {LIBRARY} images, {LIST_BATCHES} batches x {LIST_BATCH_SIZE}"
                f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
            )
            with httpx.Client(base_url=base, timeout=300) as client:
                full, size = sequential(client, "/batches/", 2 if quick else 4)
                per_k = statistics.median(full) / (LIST_BATCHES * LIST_BATCH_SIZE / 1000)
                line(
                    "GET /batches/ full (20 x 2.5k) p50",
                    f"{ms(statistics.median(full))}, {size / 1e6:.1f} MB, {per_k * 1000:.1f} ms/1k",
                    "as cheap per image as the batch page",
                )
                response = client.get("/batches/", params={"include": "summary", "limit": 50})
                summary_supported = len(response.content) < size / 10
                if summary_supported:
                    path = "/batches/?include=summary&limit=50"
                    times, size = sequential(client, path, repeats)
                    line(
                        "GET /batches/?include=summary&limit=50 p50",
                        f"{ms(statistics.median(times))}, {size / 1e3:.0f} KB",
                        "milliseconds (home page)",
                    )
                else:
                    line("GET /batches/?include=summary", "not supported", "milliseconds")

            batch_2k = insert_batch(url, "wedding 2k", ids[:2000])
            batch_5k = insert_batch(url, "wedding 5k", ids)
            with httpx.Client(base_url=base, timeout=300) as client:
                for label, batch_id in (("2k", batch_2k), ("5k", batch_5k)):
                    times, size = sequential(client, f"/batches/{batch_id}", repeats)
                    line(
                        f"GET /batches/{{id}} {label}, 1 client, p50 / p99",
                        f"{ms(statistics.median(times))} / {ms(pct(times, 0.99))}"
                        f" ({size / 1e6:.2f} MB)",
                        "p50 <= 100 ms at 5k",
                    )
            for label, batch_id in (("2k", batch_2k), ("5k", batch_5k)):
                lat, rate, failed = concurrent(base, f"/batches/{batch_id}", 8, 2 if quick else 4)
                line(
                    f"GET /batches/{{id}} {label}, 8 clients, p50, req/s",
                    f"{ms(statistics.median(lat)) if lat else '-'}, {rate:.1f} req/s"
                    + (f", {failed} FAILED" if failed else ""),
                    "(issue: 1.86 s p50, 3.9 req/s at 2k)",
                )

            with httpx.Client(base_url=base, timeout=60) as client:
                quiet, _ = sequential(client, "/images/?limit=100", 100)
                line(
                    "GET /images/?limit=100 idle, p50 / p99",
                    f"{ms(statistics.median(quiet))} / {ms(pct(quiet, 0.99))}",
                    "-",
                )
                busy, uploads = while_uploading(
                    base, lambda: sequential(client, "/images/?limit=100", 200)[0]
                )
                line(
                    f"GET /images/?limit=100 during uploads ({uploads} files), p50 / p99",
                    f"{ms(statistics.median(busy))} / {ms(pct(busy, 0.99))}",
                    "p99 <= 50 ms",
                )
            shutil.rmtree(tmp / "assets", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("both", "postgres", "sqlite"), default="both")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    print(f"command: python -m bench.batch_reads {' '.join(sys.argv[1:])}".rstrip())
    print(f"{'figure':<58} | {'measured':<34} | target")
    for kind in ("postgres", "sqlite") if args.db == "both" else (args.db,):
        run(kind, args.quick)


if __name__ == "__main__":
    main()
