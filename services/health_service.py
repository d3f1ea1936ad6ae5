"""What /health reports: database reachability, storage, model state, processing progress."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crud import crud_image
from processing.feature_extraction import EmbedderStatus, ManagedEmbedder

logger = logging.getLogger(__name__)


def health_report(
    session: Session,
    embedder: ManagedEmbedder,
    queued: int,
    storage_dirs: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """`ok` whenever images can be stored and embedded, the offline fallback included;
    `degraded` only for real trouble: database, storage, or no model at all."""
    status = embedder.status
    model_state = _model_state(status)
    model = {
        "configured_model": status.configured_model,
        "active_model": status.active_model,
        "loaded": status.loaded,
        "device": status.device,
        "state": model_state,
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
    storage = _storage_state(storage_dirs)
    healthy = database == "ok" and storage == "ok" and model_state != "failed"
    return {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "storage": storage,
        "model": model,
        "queued": queued,
        **counts,
    }


def _model_state(status: EmbedderStatus) -> str:
    """configured (or not loaded yet), fallback (the offline encoder works instead), failed."""
    if status.fallback_reason is None:
        return "configured"
    return "fallback" if status.active_model is not None else "failed"


def _storage_state(dirs: tuple[Path, ...]) -> str:
    for directory in dirs:
        if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
            logger.warning("health check: storage directory %s is missing or read-only", directory)
            return "unwritable"
    return "ok"
