"""A folder imported in place against the HTTP upload of the same number of files, same run.

    python -m bench.import_in_place [--files 2000] [--side 1600] [--clients 2] [--per-request 20]

One real `uvicorn api.main:app` on a fresh PostgreSQL database, IMPORT_ROOTS set to a scratch
folder. --files photo-like JPEGs per method (--side px on the long side, q90; each file differs
by a JPEG comment, so none is a duplicate and every check decodes the same pixels) are
written first. What is timed is the ingest: every file read, hashed (SHA-256), checked by a
decode and given a row in the database, as the API answers it (upload: every request answered;
import: `GET /imports/{id}` says complete). Thumbnails, quality and vectors come after, the
same work for both whichever way a file came in, so the server runs without a worker
(TASK_BACKEND=celery towards a broker nobody listens on: the ids wait, nothing is processed)
and the machine's noise is not the worker's. The two methods alternate in the order import,
upload, upload, import (half the files each time), so a drift in the machine's load hits
both alike.

Reported: files/s of each, their ratio (target: import >= upload), and the bytes under
STORAGE_ROOT/images after each phase (the import must add none).
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.batch_reads import running_server
from bench.scratch import scratch_postgres
from database.migrations import upgrade_to_head


def photo_jpeg(side: int) -> bytes:
    """A photo-like JPEG: smooth gradients, texture and noise (compresses like a photo)."""
    rng = np.random.default_rng(7)
    w, h = side, side * 3 // 4
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w * 200, y / h * 180, (x + y) / (w + h) * 160], axis=2)
    texture = 30 * np.sin(x / 7.0)[..., None] * np.cos(y / 11.0)[..., None]
    pixels = np.clip(base + texture + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_folder(folder: Path, count: int, base: bytes, tag: str) -> int:
    """`count` files of `base` with a COM segment each (unique bytes); their total size."""
    folder.mkdir(parents=True)
    total = 0
    for n in range(count):
        comment = f"{tag}-{n}".encode()
        data = base[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + base[2:]
        (folder / f"IMG_{n:05d}.JPG").write_bytes(data)
        total += len(data)
    return total


def tree_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def run_import(client: httpx.Client, folder: Path) -> float:
    start = time.perf_counter()
    answer = client.post("/imports", json={"path": str(folder), "batch_name": "in place"})
    answer.raise_for_status()
    import_id = answer.json()["id"]
    while True:
        progress = client.get(f"/imports/{import_id}").json()
        if progress["status"] in {"complete", "failed"}:
            assert progress["status"] == "complete", progress
            assert progress["failed"] == 0, progress["failures"][:3]
            return time.perf_counter() - start
        time.sleep(0.25)


def run_upload(url: str, folder: Path, clients: int, per_request: int) -> float:
    files = sorted(folder.iterdir())
    chunks = [files[k : k + per_request] for k in range(0, len(files), per_request)]

    def send(chunk: list[Path]) -> int:
        with httpx.Client(base_url=url, timeout=600) as client:
            parts = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in chunk]
            response = client.post("/images/upload", files=parts)
            response.raise_for_status()
            return len(response.json())

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        stored = sum(pool.map(send, chunks))
    assert stored == len(files), stored
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--side", type=int, default=1600)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--per-request", type=int, default=20)
    args = parser.parse_args()
    print(
        f"python -m bench.import_in_place --files {args.files} --side {args.side} "
        f"--clients {args.clients} --per-request {args.per_request}"
    )
    half = args.files // 2
    with tempfile.TemporaryDirectory() as tmp_name, scratch_postgres() as url:
        tmp = Path(tmp_name)
        upgrade_to_head(url)
        base = photo_jpeg(args.side)
        roots = tmp / "cards"
        folders = {
            name: write_folder(roots / name, half, base, name)
            for name in ("import-1", "upload-1", "upload-2", "import-2")
        }
        size = folders["import-1"] / half
        print(f"{2 * half} files per method, {size / 1024:.0f} KiB each")
        os.environ.update(
            IMPORT_ROOTS=str(roots),
            TASK_BACKEND="celery",
            CELERY_BROKER_URL="redis://127.0.0.1:9/0",  # nobody listens: nothing is processed
        )
        storage = tmp / "storage"
        seconds = {"import": 0.0, "upload": 0.0}
        added = {"import": 0, "upload": 0}
        with (
            running_server(url, storage) as server,
            httpx.Client(base_url=server.url, timeout=600) as client,
        ):
            warm = roots.parent / "warm"
            write_folder(warm, 8, base, "warm-up")
            run_upload(server.url, warm, 1, 8)  # first requests, untimed
            images = storage / "images"
            for name in folders:
                before = tree_bytes(images)
                method = name.split("-")[0]
                if method == "import":
                    took = run_import(client, roots / name)
                else:
                    took = run_upload(server.url, roots / name, args.clients, args.per_request)
                seconds[method] += took
                added[method] += tree_bytes(images) - before
                print(f"  {name}: {half} files in {took:.1f} s ({half / took:.1f} files/s)")
        n = 2 * half
        for method, label in (("import", "import in place"), ("upload", "HTTP upload")):
            print(
                f"{label:16s} {n / seconds[method]:6.1f} files/s ({seconds[method]:.1f} s); "
                f"bytes added under STORAGE_ROOT/images: {added[method]}"
            )
        print(
            f"ratio import/upload files/s: {seconds['upload'] / seconds['import']:.2f}x "
            f"(target >= 1); the folders hold {n * size:.0f} bytes per method"
        )


if __name__ == "__main__":
    main()
