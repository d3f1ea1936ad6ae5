"""Peak memory of a real server under 240 MP PNG uploads and on-demand thumbnails.

The attack of issue 18 (row 1): PNGs of 16000x15000 16-bit grey pixels, all zero, built with
zlib (467 KB each, 458 MB decoded). Against a real server process on a scratch PostgreSQL
database, for this tree and optionally an older checkout (--before DIR):

1. three such PNGs are uploaded and processed, then their thumbnails deleted, so that the
   next requests must make them on demand;
2. the server's peak RSS is reset (/proc/PID/clear_refs), then three other such PNGs are
   uploaded at once while nine thumbnail requests (three per earlier image) run beside them;
   a 503 is retried after its Retry-After, as a client should;
3. once the worker is idle again (it decodes the three new uploads too), RSS is read again.

It prints the RSS at start, the peak during the attack, and the RSS afterwards, and the
answers' statuses. Target: peak <= 1.5 GB and back near the start afterwards.

    .venv/bin/python -m bench.decode_memory [--before /path/to/old/tree]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from bench.scratch import default_admin_url, scratch_postgres
from tests.factories import blank_png

HERE = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 16000, 15000
UPLOADS = 3
THUMBNAILS_PER_IMAGE = 3
GB = 1024 * 1024  # in kB, as /proc reports


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def wait_idle(
    url: str, process: subprocess.Popen[bytes], timeout: float = 1800, made_on_demand: int = 0
) -> None:
    """Until nothing is queued or pending but the thumbnails made on demand (the worker does
    not record those: their images stay "pending" until a restart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited")
        try:
            health = httpx.get(f"{url}/health", timeout=10).json()
            thumbnails = max(0, health["pending_thumbnails"] - made_on_demand)
            pending = thumbnails + health["pending_embeddings"]
            if pending + health["pending_quality"] == 0 and health["queued"] == 0:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(1)
    raise TimeoutError("server not idle")


def with_retries(send: httpx.Request, client: httpx.Client) -> tuple[httpx.Response, int]:
    """The final answer, and how many 503s came first, retried after their Retry-After."""
    busy = 0
    while True:
        try:
            response = client.send(send)
        except httpx.TransportError:
            # A kept-alive connection the server closed as it was reused (its keep-alive
            # timeout equals Retry-After): sent again on a new one.
            continue
        if response.status_code != 503 or busy >= 20:
            return response, busy
        busy += 1
        time.sleep(float(response.headers.get("Retry-After", "5")))


@dataclass(frozen=True)
class Result:
    start: int
    before_attack: int
    peak: int
    after: int
    statuses: list[int]
    busy: int
    seconds: float


def pngs(count: int, first_width: int) -> list[bytes]:
    # Distinct widths, so that no upload is a duplicate of another.
    return [blank_png(first_width - n, HEIGHT) for n in range(count)]


def measure(tree: Path, port: int) -> Result:
    setup, attack = pngs(UPLOADS, WIDTH), pngs(UPLOADS, WIDTH - UPLOADS)
    with tempfile.TemporaryDirectory() as tmp, scratch_postgres(prefix="bench_decode") as db_url:
        storage = Path(tmp) / "assets"
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "STORAGE_ROOT": str(storage),
            "EMBEDDING_MODEL": "efficientnet-lite0",
            "EMBEDDING_DEVICE": "cpu",
            "TORCH_THREADS": "1",
            "API_KEY": "",
        }
        migrate = f"from database.migrations import upgrade_to_head; upgrade_to_head({db_url!r})"
        subprocess.run([sys.executable, "-c", migrate], cwd=tree, env=env, check=True)
        command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
        log_path = Path(tmp) / "server.log"
        log = log_path.open("wb")
        process = subprocess.Popen(command, cwd=tree, env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_idle(url, process)
            except RuntimeError:
                log.flush()
                print(log_path.read_text()[-3000:])
                raise
            start = status_kb(process.pid, "VmRSS")
            with httpx.Client(base_url=url, timeout=1800) as client:
                ids = []
                for n, png in enumerate(setup):
                    files = [("files", (f"setup{n}.png", png, "image/png"))]
                    request = client.build_request("POST", "/images/upload", files=files)
                    response, _ = with_retries(request, client)
                    if response.status_code != 200:
                        raise RuntimeError(f"setup upload answered {response.text}")
                    ids.append(response.json()[0]["id"])
                wait_idle(url, process)
                for thumbnail in (storage / "thumbnails").iterdir():
                    thumbnail.unlink()
                engine = create_engine(db_url)
                with engine.begin() as conn:
                    conn.execute(text("UPDATE image_clustering.images SET has_thumbnail = false"))
                engine.dispose()
                before_attack = status_kb(process.pid, "VmRSS")
                Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # resets VmHWM
                requests = [
                    client.build_request(
                        "POST",
                        "/images/upload",
                        files=[("files", (f"attack{n}.png", png, "image/png"))],
                    )
                    for n, png in enumerate(attack)
                ] + [
                    client.build_request("GET", f"/images/thumbnail/{image_id}")
                    for image_id in ids
                    for _ in range(THUMBNAILS_PER_IMAGE)
                ]
                began = time.monotonic()
                with ThreadPoolExecutor(len(requests)) as pool:
                    answers = list(pool.map(lambda r: with_retries(r, client), requests))
                answered = time.monotonic() - began
                wait_idle(url, process, made_on_demand=len(ids))
                peak = status_kb(process.pid, "VmHWM")
                time.sleep(2)
                after = status_kb(process.pid, "VmRSS")
            statuses = [response.status_code for response, _ in answers]
            busy = sum(count for _, count in answers)
            return Result(start, before_attack, peak, after, statuses, busy, answered)
        finally:
            process.terminate()
            process.wait(60)
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    args = parser.parse_args()
    sample = blank_png(WIDTH, HEIGHT)
    print(
        f"command: {' '.join([sys.executable, '-m', 'bench.decode_memory', *sys.argv[1:]])}\n"
        f"database: PostgreSQL scratch on {default_admin_url().rsplit('@', 1)[-1]}\n"
        f"PNG {WIDTH}x{HEIGHT} 16-bit grey: {len(sample) / 1024:.0f} KB file, "
        f"{WIDTH * HEIGHT * 2 / 2**20:.0f} MB decoded; {UPLOADS} concurrent uploads + "
        f"{UPLOADS * THUMBNAILS_PER_IMAGE} on-demand thumbnails (3 images)"
    )
    trees = [("this tree", HERE)] + ([("before", args.before)] if args.before else [])
    for port, (name, tree) in enumerate(trees, start=18741):
        result = measure(tree, port)
        print(
            f"{name:>9}: RSS at start {result.start / GB:.2f} GB, before the attack "
            f"{result.before_attack / GB:.2f} GB, peak {result.peak / GB:.2f} GB, "
            f"after {result.after / GB:.2f} GB; answers {result.statuses} "
            f"({result.busy} x 503 retried) in {result.seconds:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
