"""Background task wiring: which backend runs the pipeline, and the model as the API sees it.

TASK_BACKEND=inline runs it on a thread of this process; TASK_BACKEND=celery sends it to
Celery workers (services.background.celery_app), and this process loads no model."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from processing.feature_extraction import ManagedEmbedder
from services.background.celery_app import PROCESS_IMAGES_TASK, create_celery_app
from services.background.inline import InlineWorker, ProcessingWorker
from services.background.pipeline import process_images
from services.background.queue import (
    CeleryTaskQueue,
    RemoteEmbedder,
    TaskQueue,
    install_queue,
    loaded_embedder,
)
from services.background.startup import find_pending_image_ids
from services.errors import Unavailable

logger = logging.getLogger(__name__)

# How long a request waits for the model to finish loading before answering 503.
MODEL_WAIT_S = 1.0


def build_embedder(settings: Settings) -> ManagedEmbedder:
    """The model as this process sees it: loaded here (inline), or run by Celery workers."""
    if settings.task_backend == "celery":
        return RemoteEmbedder(settings)
    return ManagedEmbedder(settings)


def active_model_id(embedder: ManagedEmbedder) -> str:
    """The id of the model that embeds right now; a request waits MODEL_WAIT_S at most for a
    load in progress (on the embedder's own loader thread), then answers 503."""
    try:
        return embedder.ready_model_id(timeout=MODEL_WAIT_S)
    except TimeoutError:
        raise Unavailable("The embedding model is still loading; try again shortly.") from None
    except Exception:
        raise Unavailable(
            "No embedding model could be loaded: "
            f"{embedder.status.fallback_reason or 'see the server log'}."
        ) from None


def build_worker(
    settings: Settings,
    session_factory: sessionmaker[Session],
    embedder: ManagedEmbedder,
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
    embedder: ManagedEmbedder,
    *,
    threaded: bool,
) -> TaskQueue:
    if settings.task_backend == "celery":
        return _celery_queue(settings, session_factory, embedder)

    def process(image_ids: list[int]) -> None:
        process_images(session_factory, settings, loaded_embedder(embedder), image_ids)

    if not threaded:
        return InlineWorker(process, settings.embedding_batch_size)

    def backfill() -> list[int]:
        active = loaded_embedder(embedder)
        return find_pending_image_ids(session_factory, active.model_id if active else None)

    return ProcessingWorker(process, settings.embedding_batch_size, on_start=backfill)


def _celery_queue(
    settings: Settings, session_factory: sessionmaker[Session], embedder: ManagedEmbedder
) -> CeleryTaskQueue:
    app = create_celery_app(settings)

    def send(image_ids: list[int]) -> None:
        app.send_task(PROCESS_IMAGES_TASK, args=[image_ids])

    def backfill() -> list[int]:
        # The workers' model is the configured one; the database says what it still lacks.
        return find_pending_image_ids(session_factory, active_model_id(embedder))

    return CeleryTaskQueue(send, settings.embedding_batch_size, backfill, close=app.close)
