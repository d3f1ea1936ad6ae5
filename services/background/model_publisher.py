"""The process that embeds loads the model and publishes its identity in the database.

The id a vector carries is decided where the model loads (resolved device, precision, the
offline fallback), so only the loader can say it; the API and the other readers take it from
the `active_model` row (services.model_identity)."""

from __future__ import annotations

import logging
import time

from sqlalchemy.orm import Session, sessionmaker

from crud import crud_model
from crud.crud_model import PublishedModel
from processing.feature_extraction import Embedder, EmbedderStatus, ModelHost
from services.background.retry import Backoff, is_transient

logger = logging.getLogger(__name__)


def loaded_embedder(embedder: ModelHost) -> Embedder | None:
    """The active embedder, or None (thumbnails still get made) if no model can load."""
    try:
        return embedder.load()
    except Exception:
        return None


def publish_status(session_factory: sessionmaker[Session], status: EmbedderStatus) -> None:
    """Publish the outcome of this process's model load (a database error propagates)."""
    published = PublishedModel(
        model_id=status.active_model,
        configured_model=status.configured_model,
        device=status.device,
        fallback_reason=status.fallback_reason,
    )
    with session_factory() as session, session.begin():
        crud_model.publish_model(session, published)
    logger.info("published the active embedding model: %s", published.model_id)


def publish_loaded_model(
    session_factory: sessionmaker[Session], embedder: ModelHost
) -> Embedder | None:
    """Load the model (once per process) and publish what loaded, or why nothing did; the
    active embedder or None. A database error propagates: the caller retries."""
    active = loaded_embedder(embedder)
    publish_status(session_factory, embedder.status)
    return active


def publish_until_done(
    session_factory: sessionmaker[Session],
    embedder: ModelHost,
    backoff: Backoff | None = None,
) -> Embedder | None:
    """`publish_loaded_model`, waiting out a database that is down (a Celery worker's
    start-up: without the row the API cannot tell which vectors are current)."""
    backoff = backoff or Backoff()
    while True:
        try:
            return publish_loaded_model(session_factory, embedder)
        except Exception as exc:
            if not is_transient(exc):
                logger.exception("could not publish the embedding model")
                return loaded_embedder(embedder)
            delay = backoff.next_delay()
            logger.warning(
                "could not publish the embedding model (%s); again in %.1f s", exc, delay
            )
            time.sleep(delay)
