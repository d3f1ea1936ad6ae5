"""Longest request of a real server while its database is silently partitioned away.

Issue 18, row 2: the server reaches PostgreSQL through tests/system/db_proxy.py, which on
`stall()` stops forwarding without closing anything (no RST, no FIN), as a network partition
does. During a STALL-second stall (default 90), CLIENTS threads (default 60) send
`GET /images/` back to back and one thread sends `GET /` (no database) every half second.
Printed: the longest request of each kind, the answers by status, whether every 503 was JSON
with Retry-After, and how long after the stall the first 200 came. Target: every request
answered within 10 s, database requests with a JSON 503.

    .venv/bin/python -m bench.partition [--stall 90] [--clients 60] [--before /old/tree]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.scratch import scratch_postgres
from tests.system.db_proxy import DatabaseProxy

HERE = Path(__file__).resolve().parents[1]


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.longest: dict[str, float] = {"images": 0.0, "root": 0.0}
        self.statuses: Counter[str] = Counter()
        self.bad_503 = 0

    def record(self, kind: str, seconds: float, response: httpx.Response | None) -> None:
        with self.lock:
            self.longest[kind] = max(self.longest[kind], seconds)
            status = "timeout" if response is None else str(response.status_code)
            self.statuses[f"{kind} {status}"] += 1
            if response is not None and response.status_code == 503:
                is_json = response.headers.get("content-type", "").startswith("application/json")
                if not (is_json and response.headers.get("retry-after")):
                    self.bad_503 += 1


def timed(client: httpx.Client, path: str) -> tuple[float, httpx.Response | None]:
    began = time.monotonic()
    try:
        response: httpx.Response | None = client.get(path)
    except httpx.HTTPError:
        response = None
    return time.monotonic() - began, response


def run(tree: Path, port: int, stall: float, clients: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, scratch_postgres(prefix="bench_partition") as url:
        migrate = f"from database.migrations import upgrade_to_head; upgrade_to_head({url!r})"
        subprocess.run([sys.executable, "-c", migrate], cwd=tree, check=True)
        proxy = DatabaseProxy.for_url(url)
        env = {
            **os.environ,
            "DATABASE_URL": proxy.url_through(url),
            "STORAGE_ROOT": str(Path(tmp) / "assets"),
            "EMBEDDING_MODEL": "efficientnet-lite0",
            "EMBEDDING_DEVICE": "cpu",
            "TORCH_THREADS": "1",
            "API_KEY": "",
        }
        log = (Path(tmp) / "server.log").open("wb")
        command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
        server = subprocess.Popen(command, cwd=tree, env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/images/", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            tally = Tally()
            stop = threading.Event()
            limits = httpx.Limits(max_connections=clients + 5)

            def images() -> None:
                with httpx.Client(base_url=base, timeout=stall + 60, limits=limits) as client:
                    while not stop.is_set():
                        tally.record("images", *timed(client, "/images/"))

            def root() -> None:
                with httpx.Client(base_url=base, timeout=stall + 60) as client:
                    while not stop.is_set():
                        tally.record("root", *timed(client, "/"))
                        time.sleep(0.5)

            threads = [threading.Thread(target=images) for _ in range(clients)]
            threads.append(threading.Thread(target=root))
            proxy.stall()
            for thread in threads:
                thread.start()
            time.sleep(stall)
            stop.set()
            for thread in threads:
                thread.join(stall + 120)
            proxy.restore()
            restored = time.monotonic()
            while time.monotonic() - restored < 120:
                seconds, response = timed(httpx.Client(base_url=base, timeout=30), "/images/")
                if response is not None and response.status_code == 200:
                    break
                time.sleep(0.2)
            back = time.monotonic() - restored
            print(
                f"{tree}: longest GET /images/ {tally.longest['images']:.1f} s, "
                f"longest GET / {tally.longest['root']:.1f} s; answers {dict(tally.statuses)}; "
                f"503s without JSON + Retry-After: {tally.bad_503}; "
                f"first 200 after the stall: {back:.1f} s",
                flush=True,
            )
        finally:
            server.terminate()
            server.wait(60)
            proxy.close()
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stall", type=float, default=90.0)
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable, '-m', 'bench.partition', *sys.argv[1:]])}")
    trees = [HERE] + ([args.before] if args.before else [])
    for port, tree in enumerate(trees, start=18761):
        run(tree, port, args.stall, args.clients)


if __name__ == "__main__":
    main()
