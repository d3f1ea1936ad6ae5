"""Races on PostgreSQL against a real server process (issue 18, items 4-6).

    python -m bench.races [--rounds 1000] [--reversed-trials 15] [--out bench/results/races.txt]

A real server (uvicorn, a throwaway PostgreSQL database, the tiny random DINOv3 of the tests,
inline worker) takes `--rounds` rounds of seven or eight concurrent requests (analyze, remove
a keeper, delete an image, re-rank, add an image being deleted, CSV export, read; every third
round the batch is deleted too; tests/system/races.py). Reported: 500s and 503s (both must be
0: a race is neither a defect nor an outage), groups left without exactly one keeper (must be
0), and the statuses of `--reversed-trials` pairs of concurrent uploads of the same 20 files,
one in reverse order.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.scratch import scratch_postgres
from database.database import create_db_engine
from tests.system.conftest import ServerProcess
from tests.system.races import RaceReport, race_rounds, reversed_uploads
from tests.tiny_models import build_tiny_dinov3

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--reversed-trials", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    command = "python -m bench.races " + " ".join(sys.argv[1:])
    started = time.monotonic()

    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_postgres(args.postgres_url, migrate=True) as url,
    ):
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "STORAGE_ROOT": str(Path(tmp) / "assets"),
            "EMBEDDING_MODEL": str(build_tiny_dinov3(Path(tmp) / "tiny")),
            "EMBEDDING_DEVICE": "cpu",
            "TORCH_THREADS": "1",
            "TASK_BACKEND": "inline",
            "API_KEY": "",
            "PYTHONUNBUFFERED": "1",
        }
        server = ServerProcess(env=env, log_path=Path(tmp) / "server.log")
        server.start()
        engine = create_db_engine(url)
        try:

            def progress(done: int, report: RaceReport) -> None:
                if done % 50 == 0:
                    print(
                        f"round {done} ({time.monotonic() - started:.0f} s): "
                        f"500s {report.count(500)}, 503s {report.count(503)}, "
                        f"keeperless {len(report.keeperless)}",
                        flush=True,
                    )

            report = race_rounds(
                server.url, engine, args.rounds, server.wait_until_processed, args.seed, progress
            )
            uploads = reversed_uploads(server.url, args.reversed_trials, seed=args.seed)
            log = server.log_path.read_text(errors="replace")
        finally:
            server.stop()
            engine.dispose()

    tracebacks = log.count("Traceback (most recent call last)")
    text = "\n".join(
        [
            f"$ {command}",
            report.summary(),
            f"reversed uploads ({args.reversed_trials} trials x 2 requests): {dict(uploads)}",
            f"tracebacks in the server log: {tracebacks}",
        ]
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
