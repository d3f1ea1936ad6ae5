"""Processing throughput: the inline worker against 1 and 2 Celery worker processes, same files.

    python -m bench.workers [--images 96] [--megapixels 12] [--repeats 2]

Each run resets the images (no thumbnail, quality or embedding) and times until the database
says every one is done: decode, thumbnail, quality, DINOv3 ViT-S/16 forward (random weights,
nothing to download), results written. Inline = the server's own thread (TASK_BACKEND=inline,
torch's default threads, and once with 1 thread); Celery =
`python -m services.background.celery_worker` processes with TORCH_THREADS=1 each, fed
through Redis, already started and with the model loaded. Needs PostgreSQL (a throwaway
database is created and dropped; --postgres-url) and Redis (database 14 is flushed;
--redis-url).
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from bench.embedding import make_photo, save_vits16
from bench.scratch import default_admin_url, scratch_postgres
from config import Settings
from crud import crud_image
from database.database import create_db_engine, create_session_factory
from database.models import Image as ImageRow
from processing.feature_extraction import ManagedEmbedder
from services.background.celery_app import PROCESS_IMAGES_TASK, create_celery_app
from services.background.queue import CeleryTaskQueue
from services.background.wiring import build_worker
from services.image_service import IncomingUpload, upload_images
from utils.file_handling import ensure_storage_dirs

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DISTINCT_PHOTOS = 8  # 12 MP photos take ~3 s each to make; the rest are copies, see below


def make_files(directory: Path, count: int, megapixels: float) -> list[Path]:
    """`count` JPEGs; copies of a few photos, each made unique (the upload deduplicates by
    hash) by bytes after the end-of-image marker, which decoders ignore."""
    bases = [directory / f"base{n}.jpg" for n in range(min(count, DISTINCT_PHOTOS))]
    for n, path in enumerate(bases):
        make_photo(path, megapixels, seed=n)
    files = []
    for n in range(count):
        path = directory / f"photo{n}.jpg"
        path.write_bytes(bases[n % len(bases)].read_bytes() + f"copy {n}".encode())
        files.append(path)
    return files


def reset(factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        session.execute(
            update(ImageRow).values(
                has_thumbnail=False,
                quality_score=None,
                sharpness=None,
                exposure=None,
                features=None,
                embedding_model=None,
            )
        )


def pending(factory: sessionmaker[Session], model: str) -> int:
    with factory() as session:
        counts = crud_image.processing_counts(session, model)
    return counts["pending_thumbnails"] + counts["pending_quality"] + counts["pending_embeddings"]


def time_inline(settings: Settings, factory: sessionmaker[Session], count: int) -> float:
    """Images/s of the server's own worker thread, start-up backfill to idle."""
    embedder = ManagedEmbedder(settings.embedder_spec)
    embedder.load()
    reset(factory)
    worker = build_worker(settings, factory, embedder)
    start = time.perf_counter()
    worker.start()
    worker.wait_idle()
    elapsed = time.perf_counter() - start
    worker.stop()
    assert pending(factory, settings.embedding_model) == 0
    return count / elapsed


def start_workers(env: dict[str, str], count: int, logs: Path) -> list[subprocess.Popen[bytes]]:
    """Start `count` workers and wait until each has loaded the model."""
    processes, log_paths = [], [logs / f"worker{n}.log" for n in range(count)]
    for n, log_path in enumerate(log_paths):
        with log_path.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.background.celery_worker", f"-n=bench{n}@%h"],
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    for log_path in log_paths:
        wait_for(functools.partial(log_mentions, log_path, "Embedding model"), 300)
    return processes


def log_mentions(path: Path, words: str) -> bool:
    return words in path.read_text(errors="replace")


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(interval)


def time_celery(
    settings: Settings, factory: sessionmaker[Session], ids: list[int], repeats: int
) -> list[float]:
    """Images/s of already-running Celery workers, from sending the ids to all done."""
    app = create_celery_app(settings)
    queue = CeleryTaskQueue(
        lambda batch: app.send_task(PROCESS_IMAGES_TASK, args=[batch]),
        settings.embedding_batch_size,
    )
    queue.start()
    rates = []
    for _ in range(repeats):
        reset(factory)
        start = time.perf_counter()
        queue.submit(ids)
        wait_for(lambda: pending(factory, settings.embedding_model) == 0, 600)
        rates.append(len(ids) / (time.perf_counter() - start))
    queue.stop()
    app.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--postgres-url", default=default_admin_url())
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--logs", type=Path, help="keep the workers' logs in this directory")
    args = parser.parse_args()
    broker = redis.Redis.from_url(args.redis_url)
    broker.flushdb()

    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_postgres(args.postgres_url, migrate=True) as url,
    ):
        root = Path(tmp)
        model_dir = save_vits16(root / "vits16")
        settings = Settings(
            _env_file=None,
            database_url=url,
            storage_root=root / "assets",
            embedding_model=str(model_dir),
            embedding_device="cpu",
            embedding_batch_size=args.batch,
            task_backend="celery",
            celery_broker_url=args.redis_url,
        )
        ensure_storage_dirs(settings)
        print(f"making {args.images} JPEGs of {args.megapixels} MP ...", file=sys.stderr)
        files = make_files(root, args.images, args.megapixels)
        factory = create_session_factory(create_db_engine(url))
        with factory() as session:
            handles = [p.open("rb") for p in files]
            uploads = [IncomingUpload(p.name, h) for p, h in zip(files, handles, strict=True)]
            report = upload_images(session, settings, uploads)
            session.commit()
            for handle in handles:
                handle.close()
        ids = [r.image.id for r in report.accepted]
        assert len(ids) == args.images

        inline = settings.model_copy(update={"task_backend": "inline"})
        inline_default = [time_inline(inline, factory, len(ids)) for _ in range(args.repeats)]
        # torch's thread count is set once per process: the 1-thread inline run goes last
        # in a process of its own.
        inline_one = one_thread_inline(url, root, model_dir, args)

        env = {
            **os.environ,
            "TASK_BACKEND": "celery",
            "CELERY_BROKER_URL": args.redis_url,
            "DATABASE_URL": url,
            "STORAGE_ROOT": str(settings.storage_root),
            "EMBEDDING_MODEL": str(model_dir),
            "EMBEDDING_DEVICE": "cpu",
            "EMBEDDING_BATCH_SIZE": str(args.batch),
            "TORCH_THREADS": "1",
        }
        celery: dict[int, list[float]] = {}
        for workers in (1, 2):
            logs = args.logs / f"{workers}-workers" if args.logs else root
            logs.mkdir(parents=True, exist_ok=True)
            processes = start_workers(env, workers, logs)
            try:
                celery[workers] = time_celery(settings, factory, ids, args.repeats)
            finally:
                stop_workers(processes)
    broker.flushdb()

    print(f"command: python -m bench.workers {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"images: {args.images} x {args.megapixels} MP JPEG, batch {args.batch}, "
        f"{os.cpu_count()} cores; median of {args.repeats} runs"
    )
    print(f"inline worker, torch default threads:   {statistics.median(inline_default):6.2f} img/s")
    print(f"inline worker, 1 torch thread:          {inline_one:6.2f} img/s")
    for workers, rates in celery.items():
        label = f"Celery, {workers} worker process{'es' if workers > 1 else ''}, 1 thread each:"
        print(f"{label:40s}{statistics.median(rates):6.2f} img/s")


def one_thread_inline(url: str, root: Path, model_dir: Path, args: argparse.Namespace) -> float:
    """The inline worker with TORCH_THREADS=1, in a fresh process (median of the repeats)."""
    code = (
        "import sys\n"
        "from bench.workers import inline_in_this_process\n"
        "print(inline_in_this_process(*sys.argv[1:]))\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            url,
            str(root / "assets"),
            str(model_dir),
            str(args.batch),
            str(args.repeats),
        ],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def inline_in_this_process(
    url: str, storage_root: str, model_dir: str, batch: str, repeats: str
) -> float:
    settings = Settings(
        _env_file=None,
        database_url=url,
        storage_root=Path(storage_root),
        embedding_model=model_dir,
        embedding_device="cpu",
        embedding_batch_size=int(batch),
        torch_threads=1,
    )
    factory = create_session_factory(create_db_engine(url))
    with factory() as session:
        count = crud_image.count_images(session)
    return statistics.median(time_inline(settings, factory, count) for _ in range(int(repeats)))


if __name__ == "__main__":
    main()
