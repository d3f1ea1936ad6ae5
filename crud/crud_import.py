"""Queries for folder imports (table `imports`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from database.models import FolderImport, Image


def add_import(session: Session, folder_import: FolderImport) -> FolderImport:
    session.add(folder_import)
    session.flush()
    return folder_import


def get_import(session: Session, import_id: int) -> FolderImport | None:
    return session.get(FolderImport, import_id)


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
