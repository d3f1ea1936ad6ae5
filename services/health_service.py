"""What /health reports: database reachability, storage, model state, processing progress."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crud import crud_image
from crud.crud_model import PublishedModel
from database.deadlines import DATABASE_LOST, lost_connection
from services.model_identity import published_model
from utils.file_handling import StorageUnavailable, check_storage

logger = logging.getLogger(__name__)


def health_report(
    session: Session,
    configured_model: str,
    queued: int,
    storage_dirs: tuple[Path, ...] = (),
    min_free_bytes: int = 0,
) -> dict[str, Any]:
    """`ok` whenever images can be stored and embedded, the offline fallback included;
    `degraded` only for real trouble: database, storage, or no model at all.

    The model is what the process that embeds published (this one, or Celery workers);
    `configured_model` (this process's setting) is shown until one has loaded."""
    counts = dict.fromkeys(
        ("pending_thumbnails", "pending_quality", "pending_embeddings", "failed_images"), 0
    )
    published: PublishedModel | None = None
    try:
        session.execute(text("SELECT 1"))
        published = published_model(session)
        counts = crud_image.processing_counts(
            session, published.model_id if published is not None else None
        )
        database = "ok"
    except SQLAlchemyError as exc:
        logger.warning("health check: database unreachable: %s", exc)
        session.rollback()  # the request's transaction then ends cleanly, without the database
        if lost_connection(exc):
            session.info[DATABASE_LOST] = True  # the session's owner keeps the breaker open
        database = "unreachable"
    model = _model_report(published, configured_model)
    storage = _storage_state(storage_dirs, min_free_bytes)
    healthy = database == "ok" and storage == "ok" and model["state"] != "failed"
    return {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "storage": storage,
        "model": model,
        "queued": queued,
        **counts,
    }


def _model_report(published: PublishedModel | None, configured_model: str) -> dict[str, Any]:
    """state: configured (or not loaded yet), fallback (the offline encoder works instead),
    failed (no model could be loaded)."""
    if published is None:
        return {
            "configured_model": configured_model,
            "active_model": None,
            "loaded": False,
            "device": None,
            "state": "configured",
            "fallback_reason": None,
            "loaded_at": None,
        }
    if published.fallback_reason is None:
        state = "configured"
    else:
        state = "fallback" if published.model_id is not None else "failed"
    return {
        "configured_model": published.configured_model,
        "active_model": published.model_id,
        "loaded": published.model_id is not None,
        "device": published.device,
        "state": state,
        "fallback_reason": published.fallback_reason,
        "loaded_at": published.loaded_at.isoformat() if published.loaded_at else None,
    }


def _storage_state(dirs: tuple[Path, ...], min_free_bytes: int) -> str:
    """ok, unwritable or full: what an upload would find (a deleted folder is made again)."""
    try:
        check_storage(dirs, min_free_bytes, remake=True)
    except StorageUnavailable as exc:
        return exc.state
    return "ok"
