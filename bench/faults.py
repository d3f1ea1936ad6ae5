"""A database outage in the middle of an upload: what is lost, how long until everything is done.

    python -m bench.faults [--images 300] [--outage 10] [--per-request 10] [--clients 2]

A real server process (uvicorn, TASK_BACKEND=inline, EfficientNet-Lite0 on the CPU) talks to
a throwaway PostgreSQL database through a TCP proxy (tests/system/db_proxy.py). Clients upload
`--images` distinct JPEGs, `--per-request` files a request; once a third of them is stored, the
proxy cuts every database connection and refuses new ones for `--outage` seconds. A client
whose request fails waits a second and sends it again, as a client told "try again" does.

The same upload runs first without an outage (the baseline), then with it. Reported: images
lost (acknowledged with 200 but still without thumbnail, quality score or embedding once
nothing moves any more: must be 0), seconds from the database's return until the next image
is done and until every image is done, against the baseline, and every status code the
clients saw. The shared PostgreSQL is never stopped.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bench.scratch import default_admin_url, scratch_postgres
from database.database import create_db_engine
from database.models import Image
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess
from tests.system.db_proxy import DatabaseProxy


def upload_all(
    url: str,
    requests: list[list[tuple[str, bytes]]],
    seen: collections.Counter[str],
    acknowledged: dict[str, int],
    lock: threading.Lock,
) -> None:
    """Send each request until it is answered 200 (1 s between tries)."""
    with httpx.Client(base_url=url, timeout=120) as client:
        for files in requests:
            while True:
                try:
                    response = client.post(
                        "/images/upload",
                        files=[("files", (name, data, "image/jpeg")) for name, data in files],
                    )
                    outcome = str(response.status_code)
                except httpx.HTTPError as exc:
                    response, outcome = None, type(exc).__name__
                with lock:
                    seen[outcome] += 1
                if response is not None and response.status_code == 200:
                    with lock:
                        for item in response.json():
                            acknowledged[item["original_filename"]] = item["id"]
                    break
                time.sleep(1.0)


def done_and_missing(engine: object, ids: list[int]) -> tuple[int, int]:
    """(images fully processed, acknowledged images without a row) among `ids`."""
    with engine.connect() as conn:  # type: ignore[attr-defined]
        done = conn.scalar(
            select(func.count())
            .select_from(Image)
            .where(Image.id.in_(ids))
            .where(Image.has_thumbnail.is_(True))
            .where(Image.quality_score.is_not(None))
            .where(Image.embedding_model.is_not(None))
        )
        rows = conn.scalar(select(func.count()).select_from(Image).where(Image.id.in_(ids)))
    return int(done or 0), len(ids) - int(rows or 0)


@dataclass
class Run:
    outage: float
    acknowledged: int = 0
    missing_rows: int = 0
    lost: int = 0
    cut_after: float = 0.0
    first_progress: float | None = None  # s from the database's return to the next image done
    done_at_restore: int = 0
    all_done: float | None = None  # s from the start of the upload until every image is done
    recovered: float | None = None  # s from the database's return until every image is done
    seen: collections.Counter[str] = field(default_factory=collections.Counter)
    health: dict[str, object] = field(default_factory=dict)
    tracebacks: int = 0


def run(args: argparse.Namespace, requests: list[list[tuple[str, bytes]]], outage: float) -> Run:
    result = Run(outage=outage)
    shares = [requests[c :: args.clients] for c in range(args.clients)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_postgres(args.postgres_url, migrate=True) as db_url,
    ):
        proxy = DatabaseProxy.for_url(db_url)
        engine = create_db_engine(db_url)  # direct: the bench's own view is never cut
        env = {
            **os.environ,
            "DATABASE_URL": proxy.url_through(db_url),
            "STORAGE_ROOT": str(Path(tmp) / "assets"),
            "EMBEDDING_MODEL": "efficientnet-lite0",
            "EMBEDDING_DEVICE": "cpu",
            "TORCH_THREADS": "1",
            "TASK_BACKEND": "inline",
            "API_KEY": "",
            "PYTHONUNBUFFERED": "1",
        }
        server = ServerProcess(env=env, log_path=Path(tmp) / "server.log")
        server.start()
        try:
            acknowledged: dict[str, int] = {}
            lock = threading.Lock()
            started = time.monotonic()
            clients = [
                threading.Thread(
                    target=upload_all, args=(server.url, share, result.seen, acknowledged, lock)
                )
                for share in shares
            ]
            for client in clients:
                client.start()
            restored_at = started
            if outage > 0:
                while len(acknowledged) < args.images // 3 and any(c.is_alive() for c in clients):
                    time.sleep(0.05)
                result.cut_after = time.monotonic() - started
                proxy.cut()
                time.sleep(outage)
                proxy.restore()
                restored_at = time.monotonic()
                result.done_at_restore, _ = done_and_missing(engine, list(acknowledged.values()))
                while time.monotonic() - restored_at < args.settle:
                    done, _ = done_and_missing(engine, list(acknowledged.values()))
                    if done > result.done_at_restore:
                        result.first_progress = time.monotonic() - restored_at
                        break
                    time.sleep(0.05)
            for client in clients:
                client.join()

            ids = sorted(acknowledged.values())
            last_done, last_change = -1, time.monotonic()
            while True:
                done, result.missing_rows = done_and_missing(engine, ids)
                now = time.monotonic()
                if done == len(ids):
                    result.all_done = now - started
                    result.recovered = now - restored_at
                    break
                if done != last_done:
                    last_done, last_change = done, now
                elif now - last_change > args.settle:
                    break  # nothing moves any more: what is left is lost
                time.sleep(0.25)
            result.acknowledged = len(ids)
            result.lost = len(ids) - done
            result.health = server.health()
            result.tracebacks = server.log_path.read_text(errors="replace").count("Traceback")
        finally:
            server.stop()
            proxy.close()
            engine.dispose()
    return result


def report(result: Run, args: argparse.Namespace) -> None:
    title = f"with a {result.outage:.0f} s database outage" if result.outage else "no outage"
    print(f"--- {title}")
    if result.outage:
        print(f"database cut {result.cut_after:.1f} s after the start of the upload")
    print(
        f"acknowledged images:           {result.acknowledged} (rows missing: "
        f"{result.missing_rows})"
    )
    print(f"images lost (never processed): {result.lost}")
    if result.first_progress is not None:
        print(
            f"next image done {result.first_progress:.1f} s after the database returned "
            f"({result.done_at_restore} were done when it did)"
        )
    if result.all_done is not None:
        print(f"every image done {result.all_done:.1f} s after the upload started", end="")
        print(f", {result.recovered:.1f} s after the database returned" if result.outage else "")
    else:
        health = result.health
        print(
            f"never recovered: no progress for {args.settle:.0f} s; /health: "
            f"pending_thumbnails={health.get('pending_thumbnails')} "
            f"pending_embeddings={health.get('pending_embeddings')} queued={health.get('queued')}"
        )
    print("clients saw: " + ", ".join(f"{k}: {v}" for k, v in sorted(result.seen.items())))
    print(f"server log: {result.tracebacks} tracebacks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds")
    parser.add_argument("--per-request", type=int, default=10)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480))
    parser.add_argument("--settle", type=float, default=60.0, help="give up after no progress")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without outage")
    parser.add_argument("--postgres-url", default=default_admin_url())
    args = parser.parse_args()

    print(f"making {args.images} JPEGs ...", file=sys.stderr)
    photos = [
        (f"shot{n}.jpg", jpeg_bytes((args.size[0], args.size[1]), seed=5000 + n))
        for n in range(args.images)
    ]
    requests = [photos[i : i + args.per_request] for i in range(0, len(photos), args.per_request)]
    baseline = None if args.no_baseline else run(args, requests, 0.0)
    faulty = run(args, requests, args.outage)

    print(f"command: python -m bench.faults {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"{args.images} JPEGs of {args.size[0]}x{args.size[1]} in {len(requests)} requests "
        f"from {args.clients} clients; server: inline worker, EfficientNet-Lite0, 1 torch thread"
    )
    if baseline is not None:
        report(baseline, args)
    report(faulty, args)
    if baseline is not None and baseline.all_done and faulty.all_done:
        print(
            f"every image done: {faulty.all_done:.1f} s with the outage vs "
            f"{baseline.all_done:.1f} s without (x{faulty.all_done / baseline.all_done:.2f}; "
            f"the outage itself is {args.outage:.0f} s)"
        )


if __name__ == "__main__":
    main()
