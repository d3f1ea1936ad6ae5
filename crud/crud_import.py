"""Queries for folder imports (table `imports`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from database.models import FolderImport, Image, ImageBatchAssociation


def add_import(session: Session, folder_import: FolderImport) -> FolderImport:
    session.add(folder_import)
    session.flush()
    return folder_import


def get_import(
    session: Session, import_id: int, *, for_update: bool = False
) -> FolderImport | None:
    """The import; `for_update`: its row locked until the transaction ends (PostgreSQL)."""
    return session.get(
        FolderImport, import_id, with_for_update=for_update or None, populate_existing=for_update
    )


def in_place_sources(session: Session, image_ids: list[int]) -> list[tuple[str, int, int | None]]:
    """(source path, size, mtime in ns) of the originals imported in place among these
    images: main files and RAW+JPEG companions."""
    mains = select(Image.source_path, Image.file_size, Image.source_mtime_ns).where(
        Image.id.in_(image_ids), Image.source_path.is_not(None)
    )
    companions = select(
        Image.companion_source_path, Image.companion_size, Image.companion_source_mtime_ns
    ).where(Image.id.in_(image_ids), Image.companion_source_path.is_not(None))
    rows = [*session.execute(mains), *session.execute(companions)]
    return [(str(path), int(size), mtime) for path, size, mtime in rows]


UNFINISHED = ("pending", "running")


def claim_stale(session: Session, stale_before: datetime, now: datetime) -> list[tuple[int, str]]:
    """Take over the unfinished imports whose process last showed it was alive before
    `stale_before`: each is set running with a fresh heartbeat and a new runner token, by one
    process only (the update re-checks the condition, so two servers cannot both claim one;
    the process that lost it sees another token at its next write and stops)."""
    last_seen = func.coalesce(FolderImport.heartbeat_at, FolderImport.created_at)
    stale = (FolderImport.status.in_(UNFINISHED), last_seen < stale_before)
    claimed: list[tuple[int, str]] = []
    for import_id in session.scalars(
        select(FolderImport.id).where(*stale).order_by(FolderImport.id)
    ):
        result = session.execute(
            update(FolderImport)
            .where(FolderImport.id == import_id, *stale)
            .values(status="running", heartbeat_at=now, runner=(runner := uuid.uuid4().hex))
        )
        if result.rowcount:  # type: ignore[attr-defined]
            claimed.append((import_id, runner))
    return claimed


def indexed_sources(session: Session, batch_id: int) -> set[str]:
    """The source paths of the batch's images imported in place (RAW+JPEG companions too)."""
    query = (
        select(Image.source_path, Image.companion_source_path)
        .join(ImageBatchAssociation, ImageBatchAssociation.image_id == Image.id)
        .where(ImageBatchAssociation.batch_id == batch_id, Image.source_path.is_not(None))
    )
    return {str(path) for row in session.execute(query) for path in row if path is not None}
