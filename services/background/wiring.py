"""Background task wiring: which backend runs the pipeline, and where the model lives.

TASK_BACKEND=inline runs it on threads of this process, and the model in a process of its own
(processing.model_process; EMBEDDING_ISOLATION=thread: in this process); TASK_BACKEND=celery
sends it to Celery workers (services.background.celery_app), and this process loads no model.
Either way the process that loads the model reports its id, published in the database
(services.background.model_publisher); nothing here works it out from the settings."""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from processing.feature_extraction import ManagedEmbedder, ModelHost, configure_torch_threads
from processing.model_process import InferenceProcess
from processing.threads import thread_policy
from services.background.celery_app import PROCESS_IMAGES_TASK, create_celery_app
from services.background.handoff import DEFAULT_CAPACITY_BYTES
from services.background.inline import InlineWorker, ProcessingWorker
from services.background.model_publisher import (
    loaded_embedder,
    publish_loaded_model,
)
from services.background.pipeline import (
    PreparedImages,
    finish_images,
    prepare_images,
    process_images,
)
from services.background.queue import CeleryTaskQueue, TaskQueue, install_queue
from services.background.startup import find_pending_image_ids
from services.model_identity import published_model

logger = logging.getLogger(__name__)


def build_embedder(settings: Settings) -> ModelHost | None:
    """Where the inline backend's model runs: a process of its own (EMBEDDING_ISOLATION=
    process) or this one (thread), or none (Celery workers run it); its threads as
    processing.threads decides for this machine and TORCH_THREADS."""
    if settings.task_backend == "celery":
        return None
    policy = thread_policy(settings.torch_threads)
    logger.info(
        "threads: %d cores; model %d, decode stage %d (TORCH_THREADS=%s)",
        policy.cores,
        policy.model,
        policy.decode,
        settings.torch_threads,
    )
    if settings.embedding_isolation == "process":
        return InferenceProcess(
            dataclasses.replace(settings.embedder_spec, torch_threads=policy.model)
        )
    configure_torch_threads(policy.model)
    return ManagedEmbedder(settings.embedder_spec)


def shelf_capacity(settings: Settings) -> int:
    """Bytes of uploads' decodes kept for the worker: none when it runs elsewhere (Celery)."""
    return 0 if settings.task_backend == "celery" else DEFAULT_CAPACITY_BYTES


def build_worker(
    settings: Settings,
    session_factory: sessionmaker[Session],
    embedder: ModelHost | None,
    *,
    threaded: bool = True,
) -> TaskQueue:
    """The backend TASK_BACKEND names, receiving what sessions from `session_factory`
    enqueue; `threaded=False` makes the inline one run in the caller's thread (tests)."""
    queue = _build_queue(settings, session_factory, embedder, threaded=threaded)
    install_queue(session_factory, queue)
    return queue


def _build_queue(
    settings: Settings,
    session_factory: sessionmaker[Session],
    embedder: ModelHost | None,
    *,
    threaded: bool,
) -> TaskQueue:
    if settings.task_backend == "celery":
        return _celery_queue(settings, session_factory)
    assert embedder is not None, "the inline backend runs the model in this process"

    if not threaded:
        return _inline_worker(settings, session_factory, embedder)

    decode_threads = thread_policy(settings.torch_threads).decode
    pool = ThreadPoolExecutor(decode_threads, "decode") if decode_threads > 1 else None

    def prepare(image_ids: list[int]) -> PreparedImages:
        embedder_now = loaded_embedder(embedder)
        return prepare_images(session_factory, settings, embedder_now, image_ids, pool)

    def finish(prepared: PreparedImages) -> None:
        finish_images(session_factory, prepared)

    def backfill() -> list[int]:
        # The load and its publication first: the backfill retries both on a database fault.
        active = publish_loaded_model(session_factory, embedder)
        return find_pending_image_ids(session_factory, active.model_id if active else None)

    return ProcessingWorker(
        prepare,
        settings.embedding_batch_size,
        on_start=backfill,
        finish=finish,
        on_stop=pool.shutdown if pool is not None else None,
    )


def _inline_worker(
    settings: Settings, session_factory: sessionmaker[Session], embedder: ModelHost
) -> InlineWorker:
    """Everything in the caller's thread (tests): start-up never waits for the model, and the
    model is published in a caller's thread too (never beside it on the same connection)."""
    published = threading.Event()

    def publish_once() -> None:
        if not published.is_set():
            publish_loaded_model(session_factory, embedder)
            published.set()

    def start() -> None:
        if embedder.start_loading().done():
            publish_once()  # loaded already: published before the first request

    def process(image_ids: list[int]) -> None:
        publish_once()
        process_images(session_factory, settings, loaded_embedder(embedder), image_ids)

    return InlineWorker(process, settings.embedding_batch_size, on_start=start)


def _celery_queue(settings: Settings, session_factory: sessionmaker[Session]) -> CeleryTaskQueue:
    app = create_celery_app(settings)

    def send(image_ids: list[int]) -> None:
        app.send_task(PROCESS_IMAGES_TASK, args=[image_ids])

    def backfill() -> list[int] | None:
        # What the workers' model still lacks; asked again later until a worker published it.
        with session_factory() as session:
            published = published_model(session)
        if published is None:
            return None
        return find_pending_image_ids(session_factory, published.model_id)

    return CeleryTaskQueue(send, settings.embedding_batch_size, backfill, close=app.close)
