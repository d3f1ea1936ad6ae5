"""What one upload costs the server: milliseconds per request and bytes written per file.

    .venv/bin/python -m bench.upload_write --before /path/to/old/tree [--uploads 12]

Two real `uvicorn api.main:app` servers run side by side, this tree and the one given with
--before, each on its own scratch PostgreSQL database (bench/scratch.py) and storage folder,
the offline encoder on one torch thread. Each round posts one new 4000x3000 q92 photo (about
the size of a camera's JPEG; a fresh JPEG comment each time, so nothing is a duplicate) to
each server in turn (which goes first alternates), timing the POST from the client, and waits
until both servers are idle again. Bytes written are the server's /proc/PID/io `wchar` from
before the POST until it is idle again: the upload, its thumbnail, the log lines; a file
written twice (a temp file, then a copy into incoming/) shows as about twice the photo.

First, in this process, the write alone: the photo fed in 64 KB chunks (as uvicorn hands a
body on) to Starlette's spooled temporary file then copied and hashed into a folder
(`spool_upload`, the old path), against a `HashingSpool` in that folder (the new one),
interleaved, --alone-rounds times each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import SpooledTemporaryFile

import httpx

from bench.ingest import make_photo, with_comment
from bench.scratch import scratch_postgres
from utils.file_handling import HashingSpool, spool_upload

HERE = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    ms: list[float] = field(default_factory=list)
    written: list[int] = field(default_factory=list)

    def wchar(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
        raise KeyError("wchar")

    def idle(self) -> bool:
        health = httpx.get(f"{self.url}/health", timeout=30).json()
        pending = health["pending_thumbnails"] + health["pending_embeddings"]
        return bool(pending + health["pending_quality"] + health["queued"] == 0)


def wait_idle(server: Server, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server {server.name} exited")
        try:
            if server.idle():
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"server {server.name} not idle")


@contextmanager
def running_server(name: str, tree: Path, port: int) -> Iterator[Server]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_postgres(prefix="bench_upload_write", migrate=True) as database_url,
    ):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "STORAGE_ROOT": str(Path(tmp) / "assets"),
            "EMBEDDING_MODEL": "efficientnet-lite0",
            "EMBEDDING_DEVICE": "cpu",
            "TORCH_THREADS": "1",
            "API_KEY": "",
        }
        command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
        with (Path(tmp) / "server.log").open("wb") as log:
            process = subprocess.Popen(command, cwd=tree, env=env, stdout=log, stderr=log)
            server = Server(name, f"http://127.0.0.1:{port}", process)
            try:
                wait_idle(server)
                yield server
            finally:
                process.terminate()
                process.wait(60)


def upload_once(server: Server, photo: bytes, n: int) -> None:
    before = server.wchar()
    began = time.perf_counter()
    response = httpx.post(
        f"{server.url}/images/upload",
        files=[("files", (f"photo{n}.jpg", photo, "image/jpeg"))],
        timeout=300,
    )
    server.ms.append((time.perf_counter() - began) * 1000)
    response.raise_for_status()
    wait_idle(server)
    server.written.append(server.wchar() - before)


def _chunks(photo: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [photo[start : start + size] for start in range(0, len(photo), size)]


def write_twice(chunks: list[bytes], folder: Path) -> None:
    """Starlette's temp file (1 MB in memory, then disk), then the copy + hash into `folder`."""
    with SpooledTemporaryFile(max_size=1024 * 1024) as temporary:
        for chunk in chunks:
            temporary.write(chunk)
        temporary.seek(0)
        spool_upload(temporary, folder, 1 << 40).path.unlink()  # type: ignore[arg-type]


def write_once(chunks: list[bytes], folder: Path) -> None:
    spool = HashingSpool(folder)
    for chunk in chunks:
        spool.write(chunk)
    spool.finish().path.unlink()


def write_alone(photo: bytes, rounds: int) -> dict[str, list[float]]:
    """ms to take one photo in, each way, interleaved (module docstring)."""
    chunks = _chunks(photo)
    ways: dict[str, Callable[[list[bytes], Path], None]] = {
        "before": write_twice,
        "after": write_once,
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            for name in sorted(ways, reverse=n % 2 == 1):
                began = time.perf_counter()
                ways[name](chunks, Path(tmp))
                times[name].append((time.perf_counter() - began) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="an older checkout")
    parser.add_argument("--uploads", type=int, default=12, help="uploads per server")
    parser.add_argument("--port", type=int, default=18731)
    parser.add_argument("--alone-rounds", type=int, default=30)
    args = parser.parse_args()

    photo = make_photo(seed=22)
    alone = write_alone(photo, args.alone_rounds)
    with ExitStack() as stack:
        before = stack.enter_context(running_server("before", args.before, args.port))
        after = stack.enter_context(running_server("after", HERE, args.port + 1))
        for n in range(args.uploads):
            order = (before, after) if n % 2 == 0 else (after, before)
            for server in order:
                upload_once(server, with_comment(photo, f"{server.name} {n}"), n)

    print(f"photo: {len(photo) / 1e6:.2f} MB, {args.uploads} uploads per server, one a request")
    for name, ms in alone.items():
        print(
            f"{name:6} write alone ms min {min(ms):6.2f} median {statistics.median(ms):6.2f}"
            f" ({args.alone_rounds} rounds)"
        )
    for server in (before, after):
        print(
            f"{server.name:6} ms/upload min {min(server.ms):6.1f} median "
            f"{statistics.median(server.ms):6.1f}   bytes written/upload min "
            f"{min(server.written) / 1e6:5.2f} median "
            f"{statistics.median(server.written) / 1e6:5.2f} MB "
            f"({statistics.median(server.written) / len(photo):.2f}x the photo)"
        )
    for label, pick in (("min", min), ("median", statistics.median)):
        ratio = pick(after.ms) / pick(before.ms)
        print(f"after/before ms/upload ({label}): {ratio:.2f}")
    written = statistics.median(after.written) / statistics.median(before.written)
    print(f"after/before bytes written/upload (median): {written:.2f}")
    print("load average:", " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
