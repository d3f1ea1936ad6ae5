"""Start-up work: make storage agree with the database, and find unfinished processing."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from crud import crud_image
from utils.file_handling import iter_files, thumbnail_relative_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    moved_into_place: int = 0
    removed_incoming: int = 0
    removed_orphans: int = 0


def reconcile_storage(
    session_factory: sessionmaker[Session], settings: Settings
) -> ReconcileReport:
    """Finish or undo file operations a crash interrupted. Run before serving requests.

    - `incoming/` holds uploads whose row may or may not have committed: committed ones are
      moved into place, the rest deleted.
    - files in `images/` or `thumbnails/` without a row are leftovers of a delete that crashed
      after its commit.
    """
    # List the folders before reading the rows: a file is only moved into images/ after its
    # row committed, so every listed file whose row exists is seen as known.
    incoming = list(iter_files(settings.incoming_dir))
    originals = list(iter_files(settings.images_dir))
    thumbnails = list(iter_files(settings.thumbnails_dir))
    with session_factory() as session:
        known = crud_image.all_filenames(session)
    known_thumbnails = {thumbnail_relative_path(name).split("/", 1)[1] for name in known}

    moved = removed_incoming = removed_orphans = 0
    for path in incoming:
        if path.name in known and not (settings.images_dir / path.name).exists():
            os.replace(path, settings.images_dir / path.name)
            moved += 1
        else:
            path.unlink(missing_ok=True)
            removed_incoming += 1
    for path in originals:
        if path.name not in known:
            path.unlink(missing_ok=True)
            removed_orphans += 1
    for path in thumbnails:
        if path.name not in known_thumbnails:
            path.unlink(missing_ok=True)
            removed_orphans += 1

    report = ReconcileReport(moved, removed_incoming, removed_orphans)
    if moved or removed_incoming or removed_orphans:
        logger.info("storage reconciled: %s", report)
    return report


def find_pending_image_ids(
    session_factory: sessionmaker[Session], active_model: str | None
) -> list[int]:
    """Images still missing a thumbnail or an embedding from the active model."""
    with session_factory() as session:
        ids = crud_image.ids_needing_processing(session, active_model)
    if ids:
        logger.info("queueing %d images with unfinished processing", len(ids))
    return ids
