"""Start-up work: make storage agree with the database, and find unfinished processing.

Several processes may share one storage root (a rolling restart, a second server, Celery
worker hosts on a shared mount). Each holds a shared lease on it (`StorageLease`, an flock)
for its life. A process that starts while no other holds the lease repairs everything a crash
left; one that starts beside live processes leaves their work in flight alone and removes only
leftovers older than any upload or thumbnail write can take (STALE_SECONDS).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from crud import crud_image
from utils.file_handling import LEASE_FILE, StorageLayout, iter_files, thumbnail_relative_path

logger = logging.getLogger(__name__)

# A file in incoming/ or a temporary thumbnail untouched for this long belongs to no request
# or worker still alive: uploads are written as they arrive and committed right after.
STALE_SECONDS = 24 * 3600


class StorageLease:
    """A shared flock on the storage root, held by every live process that writes to it."""

    def __init__(self, fd: int, alone: bool) -> None:
        self._fd: int | None = fd
        self.alone = alone

    @classmethod
    def acquire(cls, storage_root: Path) -> StorageLease:
        """Take the lease; `alone` says whether no other live process held it.

        A process that is alone holds it exclusively until `share()`, so one starting next to
        it waits (in `acquire`) until its repair is done."""
        storage_root.mkdir(parents=True, exist_ok=True)
        fd = os.open(storage_root / LEASE_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return cls(fd, alone=True)
        except BlockingIOError:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return cls(fd, alone=False)
        except BaseException:
            os.close(fd)
            raise

    def share(self) -> None:
        """Let other processes start beside this one (after the start-up repair)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    moved_into_place: int = 0
    removed_incoming: int = 0
    removed_orphans: int = 0


def _stale(path: Path, now: float) -> bool:
    try:
        return now - path.stat().st_mtime > STALE_SECONDS
    except FileNotFoundError:
        return False  # its owner just moved or removed it


def reconcile_storage(
    session_factory: sessionmaker[Session], settings: StorageLayout, *, alone: bool = True
) -> ReconcileReport:
    """Finish or undo file operations a crash interrupted. Run before serving requests.

    - `incoming/` holds uploads whose row may or may not have committed: committed ones are
      moved into place; the rest are deleted when no other process may still be writing or
      committing them (`alone`), or when they are stale.
    - files in `images/` or `thumbnails/` without a row are leftovers of a delete that crashed
      after its commit; a hidden temporary thumbnail is a write in flight unless `alone` or
      stale.
    """
    now = time.time()
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
            # Committed: safe whoever owns it (the owner's own move then finds it done).
            try:
                os.replace(path, settings.images_dir / path.name)
                moved += 1
            except FileNotFoundError:
                pass  # its owner moved it first
        elif alone or _stale(path, now):
            path.unlink(missing_ok=True)
            removed_incoming += 1
    for path in originals:
        if path.name not in known:
            path.unlink(missing_ok=True)
            removed_orphans += 1
    for path in thumbnails:
        in_flight = path.name.startswith(".") and not (alone or _stale(path, now))
        if path.name not in known_thumbnails and not in_flight:
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
