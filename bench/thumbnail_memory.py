"""Memory of on-demand thumbnails: six concurrent requests for the thumbnail of one large PNG.

Against a real server on a scratch PostgreSQL database (bench/scratch.py).

For each code tree given (this one, and optionally an older checkout with --before DIR), the
bench starts the server, uploads a 8000x6000 PNG, lets the worker finish, deletes the thumbnail
(so it must be made on demand), resets the server's peak RSS (/proc/PID/clear_refs) and sends
six requests at once. It reports the peak RSS growth and what stayed afterwards, and the
ratio between the trees.

    .venv/bin/python -m bench.thumbnail_memory [--before /path/to/old/tree] [--side 8000]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from sqlalchemy import create_engine, text

from bench.scratch import scratch_postgres

HERE = Path(__file__).resolve().parents[1]
REQUESTS = 6


def big_png(side: int) -> bytes:
    """A smooth picture (small file) that decodes to side x 3/4 side RGB pixels."""
    height = side * 3 // 4
    x = np.linspace(0, 255, side, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited")
        try:
            health = httpx.get(f"{url}/health", timeout=5).json()
            pending = health["pending_thumbnails"] + health["pending_embeddings"]
            if pending + health["pending_quality"] == 0 and health["queued"] == 0:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError("server not idle")


def measure(tree: Path, png: bytes, port: int, admin_url: str) -> tuple[int, int, list[int]]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_postgres(admin_url, prefix="bench_thumbs") as database_url,
    ):
        storage = Path(tmp) / "assets"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "STORAGE_ROOT": str(storage),
            "EMBEDDING_MODEL": "efficientnet-lite0",
            "EMBEDDING_DEVICE": "cpu",
            "TORCH_THREADS": "1",
            "API_KEY": "",
        }
        url = env["DATABASE_URL"]
        migrate = f"from database.migrations import upgrade_to_head; upgrade_to_head({url!r})"
        subprocess.run([sys.executable, "-c", migrate], cwd=tree, env=env, check=True)
        command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
        log = (Path(tmp) / "server.log").open("wb")
        process = subprocess.Popen(command, cwd=tree, env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_for(url, process)
            except RuntimeError:
                log.flush()
                print((Path(tmp) / "server.log").read_text()[-3000:])
                raise
            files = [("files", ("big.png", png, "image/png"))]
            response = httpx.post(f"{url}/images/upload", files=files, timeout=300)
            response.raise_for_status()
            image_id = response.json()[0]["id"]
            wait_for(url, process)
            for thumbnail in (storage / "thumbnails").iterdir():
                thumbnail.unlink()
            engine = create_engine(database_url)
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE image_clustering.images SET has_thumbnail = false WHERE id = :i"),
                    {"i": image_id},
                )
            engine.dispose()
            Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # resets VmHWM
            before = status_kb(process.pid, "VmRSS")
            with ThreadPoolExecutor(REQUESTS) as pool:
                responses = list(
                    pool.map(
                        lambda _: httpx.get(f"{url}/images/thumbnail/{image_id}", timeout=300),
                        range(REQUESTS),
                    )
                )
            peak = status_kb(process.pid, "VmHWM") - before
            kept = status_kb(process.pid, "VmRSS") - before
            return peak, kept, [r.status_code for r in responses]
        finally:
            process.terminate()
            process.wait(60)
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    parser.add_argument("--side", type=int, default=8000)
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
        help="where a scratch database is created (and dropped)",
    )
    args = parser.parse_args()
    png = big_png(args.side)
    decoded_mb = args.side * (args.side * 3 // 4) * 3 / 2**20
    print(
        f"command: {' '.join([sys.executable, '-m', 'bench.thumbnail_memory', *sys.argv[1:]])}\n"
        f"PNG {args.side}x{args.side * 3 // 4}: {len(png) / 2**20:.1f} MB file, "
        f"{decoded_mb:.0f} MB decoded; {REQUESTS} concurrent on-demand thumbnail requests"
    )
    results = {}
    trees = [("this tree", HERE)] + ([("before", args.before)] if args.before else [])
    for port, (name, tree) in enumerate(trees, start=18731):
        peak, kept, statuses = measure(tree, png, port, args.postgres)
        results[name] = peak
        print(
            f"{name:>9}: peak RSS +{peak / 1024:.0f} MB, kept +{kept / 1024:.0f} MB, "
            f"statuses {statuses}"
        )
    if args.before:
        ratio = results["before"] / max(results["this tree"], 1)
        print(f"peak growth, before / this tree: {ratio:.1f}x")


if __name__ == "__main__":
    main()
