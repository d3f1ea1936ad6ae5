"""What /health reports: database reachability, model state, processing progress."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crud import crud_image
from processing.feature_extraction import ManagedEmbedder

logger = logging.getLogger(__name__)


def health_report(session: Session, embedder: ManagedEmbedder, queued: int) -> dict[str, Any]:
    status = embedder.status
    model = {
        "configured_model": status.configured_model,
        "active_model": status.active_model,
        "loaded": status.loaded,
        "device": status.device,
        "fallback_reason": status.fallback_reason,
    }
    counts = dict.fromkeys(
        ("pending_thumbnails", "pending_quality", "pending_embeddings", "failed_images"), 0
    )
    try:
        session.execute(text("SELECT 1"))
        counts = crud_image.processing_counts(session, status.active_model)
        database = "ok"
    except SQLAlchemyError as exc:
        logger.warning("health check: database unreachable: %s", exc)
        session.rollback()  # the request's transaction then ends cleanly, without the database
        database = "unreachable"
    healthy = database == "ok" and status.fallback_reason is None
    return {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "model": model,
        "queued": queued,
        **counts,
    }
