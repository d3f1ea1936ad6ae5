"""The Celery app and its task (TASK_BACKEND=celery): image processing on worker processes.

The task is a thin call of `services.background.pipeline.process_images` on a batch of ids:
thumbnail, quality score and embedding, from one decode of each file. Splitting thumbnails
and embeddings into two tasks would decode every file twice.

Safe to run twice, or at once on two workers: `process_images` makes only what is missing,
skips deleted images and writes each result with one UPDATE of the image's row (it inserts
nothing), and thumbnails are renamed into place. So a task is acknowledged only when it is
done (`acks_late`), given back to the queue when its worker dies (`reject_on_worker_lost`;
with Redis, after CELERY_VISIBILITY_TIMEOUT when the whole worker dies), and retried with
backoff, for as long as it takes, when the database or the storage fails.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

import torch
from celery import Celery, signals
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings, get_settings
from database.database import create_db_engine, create_session_factory
from processing.feature_extraction import ManagedEmbedder, configure_torch_threads
from services.background.model_publisher import loaded_embedder, publish_until_done
from services.background.pipeline import process_images
from services.background.retry import TRANSIENT_ERRORS
from services.background.startup import StorageLease

logger = logging.getLogger(__name__)

PROCESS_IMAGES_TASK = "pixal_judge.process_images"
QUEUE = "pixal_judge"
# Database outages, pool exhaustion, a storage mount that went away or filled up: retried
# with backoff (1, 2, 4 ... 60 s, jittered) for as long as it takes; the work is never dropped
# (max_retries=None). An image that is itself broken is not an error here: the pipeline marks
# it failed and the task succeeds. A retry waits in a worker; with Redis, keep
# CELERY_VISIBILITY_TIMEOUT above the longest wait or the broker hands it out a second time
# (harmless: the task is idempotent).
RETRY_ON = TRANSIENT_ERRORS
RETRY_BACKOFF_MAX_SECONDS = 60
MAX_RETRIES = None


def create_celery_app(settings: Settings) -> Celery:
    """The app the API sends with and the workers run; building it connects to nothing."""
    app = Celery("pixal_judge", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message per process at a time: a slow batch does not hold others hostage.
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # Redis: how long a message taken by a worker that died stays invisible.
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout},
    )
    app.task(
        name=PROCESS_IMAGES_TASK,
        autoretry_for=RETRY_ON,
        retry_backoff=True,
        retry_backoff_max=RETRY_BACKOFF_MAX_SECONDS,
        retry_jitter=True,
        max_retries=MAX_RETRIES,
    )(process_images_task)
    return app


def process_images_task(image_ids: list[int]) -> dict[str, int]:
    """Thumbnail, quality and embedding for these images; what is done already is skipped."""
    worker = worker_process()
    embedder = loaded_embedder(worker.embedder)
    if embedder is None:
        logger.warning("no embedding model (see the start-up error): %s not embedded", image_ids)
    summary = process_images(worker.session_factory, worker.settings, embedder, image_ids)
    return dataclasses.asdict(summary)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerProcess:
    """What one worker process holds: its settings, database engine and model."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    embedder: ManagedEmbedder
    # Shared with the servers: one that starts meanwhile leaves our thumbnail writes alone.
    lease: StorageLease | None = None


_worker: WorkerProcess | None = None
_worker_lock = threading.Lock()


def worker_process() -> WorkerProcess:
    """This process's engine and model, made on first call (`worker_process_init`)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            settings = get_settings()
            # Never the offline fallback: the API counts only EMBEDDING_MODEL's vectors
            # as done, and two workers must not mix models. Without the model, a worker
            # still makes thumbnails and quality scores.
            embedder = ManagedEmbedder(dataclasses.replace(settings.embedder_spec, fallback=False))
            engine = create_db_engine(
                settings.resolved_database_url, deadlines=settings.database_deadlines
            )
            lease = StorageLease.acquire(settings.storage_root)
            lease.share()
            _worker = WorkerProcess(
                settings, engine, create_session_factory(engine), embedder, lease
            )
            # Here, not in the loading thread: under OpenMP the thread count set in one
            # thread does not reach threads that already exist, like this one, which runs
            # the tasks.
            configure_torch_threads(settings.torch_threads)
            logger.info("torch threads in this worker process: %d", torch.get_num_threads())
            # Loaded on a thread: Celery gives a new process 4 s to report that it is up, and
            # a model can take longer. The first task waits for it (ManagedEmbedder's lock).
            # Once loaded, its id is published for the API (which never works it out itself).
            threading.Thread(
                target=publish_until_done,
                args=(_worker.session_factory, embedder),
                name="model-load",
                daemon=True,
            ).start()
        return _worker


def open_worker_process(**_: Any) -> None:
    worker_process()


def close_worker_process(**_: Any) -> None:
    global _worker
    with _worker_lock:
        if _worker is not None:
            _worker.engine.dispose()
            if _worker.lease is not None:
                _worker.lease.release()
            _worker = None


def connect_worker_signals() -> None:
    """Open the engine and load the model once per worker process, after the fork."""
    signals.worker_process_init.connect(
        open_worker_process, weak=False, dispatch_uid="pixal_judge.open_worker_process"
    )
    signals.worker_process_shutdown.connect(
        close_worker_process, weak=False, dispatch_uid="pixal_judge.close_worker_process"
    )
