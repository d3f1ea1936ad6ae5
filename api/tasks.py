"""Background task wiring: what the worker runs, and the hand-off from a request."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from processing.feature_extraction import Embedder, ManagedEmbedder
from services.errors import Unavailable
from services.processing_service import process_images
from services.startup_service import find_pending_image_ids
from services.worker import InlineWorker, ProcessingWorker

logger = logging.getLogger(__name__)


def _loaded_embedder(embedder: ManagedEmbedder) -> Embedder | None:
    """The active embedder, or None (thumbnails still get made) if no model can load."""
    try:
        return embedder.load()
    except Exception:
        return None


def active_model_id(embedder: ManagedEmbedder) -> str:
    """The id of the model that embeds right now (loading it if need be)."""
    active = _loaded_embedder(embedder)
    if active is None:
        raise Unavailable(
            "No embedding model could be loaded: "
            f"{embedder.status.fallback_reason or 'see the server log'}."
        )
    return active.model_id


def build_worker(
    settings: Settings,
    session_factory: sessionmaker[Session],
    embedder: ManagedEmbedder,
    *,
    threaded: bool = True,
) -> ProcessingWorker | InlineWorker:
    def process(image_ids: list[int]) -> None:
        process_images(session_factory, settings, _loaded_embedder(embedder), image_ids)

    if not threaded:
        return InlineWorker(process, settings.embedding_batch_size)

    def backfill() -> list[int]:
        active = _loaded_embedder(embedder)
        return find_pending_image_ids(session_factory, active.model_id if active else None)

    return ProcessingWorker(process, settings.embedding_batch_size, on_start=backfill)


def queue_image_processing(
    worker: ProcessingWorker | InlineWorker, image_ids: Iterable[int]
) -> None:
    """Run by BackgroundTasks after the upload's transaction committed."""
    worker.submit(image_ids)
