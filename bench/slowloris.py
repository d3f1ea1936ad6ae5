"""Server file descriptors and a normal request's latency while slow clients hold connections.

Issue 18, row 10: 300 connections that send a request head a line at a time and 50 that send
a body a byte at a time, held for 40 s, took the server from 21 to 371 file descriptors.
Here HEADS connections (default 300) each send part of a head, then one more header line
every 5 s; BODIES connections (default 50) each send a head with `Content-Length: 100000`,
then one byte every 5 s. Like a slowloris tool, each reconnects 1 s after the server closes
it. `GET /` (no database) is sent every half second on a new connection, for QUIET seconds
(default 10) before the attack and throughout it. Every quarter second the server's open
descriptors are counted (/proc/PID/fd). Printed per tree: the descriptors before the attack,
their median and peak during it and their count at its end; what the slow connections got
(closed, reset, a status); and the latency of `GET /` (p50, max, failed) quiet and attacked.

The server is `run_server.py` of each tree, on SQLite in a temp folder, default settings.

    .venv/bin/python -m bench.slowloris [--seconds 40] [--heads 300] [--bodies 50]
        [--quiet 10] [--before /old/tree]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.system.conftest import ServerProcess

HERE = Path(__file__).resolve().parents[1]
RECONNECT_SECONDS = 1.0
TRICKLE_SECONDS = 5.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Probe:
    """`GET /` every half second on a new connection; the server's descriptors every 0.25 s."""

    def __init__(self, base: str, pid: int | None = None) -> None:
        self.base = base
        self.pid = pid
        self.stop = threading.Event()
        self.fds: list[int] = []
        self.latencies: list[float] = []
        self.failed = 0
        self.threads = [threading.Thread(target=self._get)]
        if pid is not None:
            self.threads.append(threading.Thread(target=self._count, args=(pid,)))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def summary(self) -> str:
        if not self.latencies:
            return f"none answered, {self.failed} failed"
        p50 = statistics.median(self.latencies) * 1000
        return (
            f"p50 {p50:.0f} ms, max {max(self.latencies) * 1000:.0f} ms "
            f"({len(self.latencies)} answered, {self.failed} failed)"
        )

    def _get(self) -> None:
        while not self.stop.wait(0.5):
            began = time.monotonic()
            try:
                httpx.get(f"{self.base}/", timeout=30).raise_for_status()
                self.latencies.append(time.monotonic() - began)
            except httpx.HTTPError:
                self.failed += 1

    def _count(self, pid: int) -> None:
        while not self.stop.wait(0.25):
            self.fds.append(open_fds(pid))


async def slow_client(port: int, kind: str, stop: asyncio.Event, tally: Counter[str]) -> None:
    """One slow connection at a time, reopened after the server closes it, until `stop`."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            tally[f"{kind} connect failed"] += 1
            await asyncio.sleep(RECONNECT_SECONDS)
            continue
        tally[f"{kind} opened"] += 1
        if kind == "head":
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        else:
            writer.write(
                b"POST /batches/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
        try:
            while not stop.is_set():
                await writer.drain()
                try:
                    answer = await asyncio.wait_for(reader.read(4096), TRICKLE_SECONDS)
                except TimeoutError:
                    writer.write(b"X-Slow: 1\r\n" if kind == "head" else b" ")
                    continue
                status = answer[9:12].decode() if answer.startswith(b"HTTP/") else "closed"
                tally[f"{kind} {status}"] += 1
                break
        except OSError:
            tally[f"{kind} reset"] += 1
        writer.close()
        if not stop.is_set():
            await asyncio.sleep(RECONNECT_SECONDS)


async def attack(
    pid: int, port: int, heads: int, bodies: int, seconds: float
) -> tuple[Counter[str], int]:
    """The slow clients for `seconds`; what they got, and the server's descriptors then."""
    stop = asyncio.Event()
    tally: Counter[str] = Counter()
    clients = [slow_client(port, "head", stop, tally) for _ in range(heads)]
    clients += [slow_client(port, "body", stop, tally) for _ in range(bodies)]
    tasks = [asyncio.create_task(client) for client in clients]
    await asyncio.sleep(seconds)
    held = open_fds(pid)
    stop.set()
    await asyncio.wait(tasks, timeout=TRICKLE_SECONDS + 5)
    return tally, held


def run(
    tree: Path, port: int, seconds: float, heads: int, bodies: int, quiet_seconds: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATABASE_URL": "",
            "STORAGE_ROOT": str(Path(tmp) / "assets"),
            "EMBEDDING_MODEL": "efficientnet-lite0",
            "EMBEDDING_DEVICE": "cpu",
            "TORCH_THREADS": "1",
            "API_KEY": "",
        }
        server = ServerProcess(
            env=env,
            log_path=Path(tmp) / "server.log",
            port=port,
            command=[sys.executable, "run_server.py"],
            cwd=tree,
        )
        server.start(timeout=300)
        assert server.process is not None
        pid, base = server.process.pid, server.url
        try:
            time.sleep(2)  # the model publisher and the first worker poll settle
            baseline = open_fds(pid)
            quiet = Probe(base)
            quiet.start()
            time.sleep(quiet_seconds)
            quiet.finish()
            attacked = Probe(base, pid)
            attacked.start()
            tally, at_end = asyncio.run(attack(pid, port, heads, bodies, seconds))
            attacked.finish()
            fds = attacked.fds or [baseline]
            print(
                f"{tree}: fds {baseline} before, median {statistics.median(fds):.0f} and peak "
                f"{max(fds)} during, {at_end} at the end of {seconds:g} s; slow connections "
                f"{dict(sorted(tally.items()))}; GET / quiet {quiet.summary()}, "
                f"attacked {attacked.summary()}",
                flush=True,
            )
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--heads", type=int, default=300)
    parser.add_argument("--bodies", type=int, default=50)
    parser.add_argument("--quiet", type=float, default=10.0)
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable, '-m', 'bench.slowloris', *sys.argv[1:]])}")
    trees = ([args.before] if args.before else []) + [HERE]
    for port, tree in enumerate(trees, start=18791):
        run(tree, port, args.seconds, args.heads, args.bodies, args.quiet)


if __name__ == "__main__":
    main()
