"""Storage: streamed uploads, thumbnails, paths under the storage root.

The write order makes a crash lose nothing: an upload is spooled into `incoming/`, its row is
committed, and only then is the file moved into `images/` (database.unit_of_work moves it, or
deletes it on rollback). Deleting works the other way round: the row goes first, the files
after the commit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from PIL import Image

from processing.photo import load_oriented_rgb

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
# In the storage root while a process uses it (services.background.startup.StorageLease).
LEASE_FILE = ".pixal-storage.lease"
THUMBNAIL_QUALITY = 85


class StorageLayout(Protocol):
    """Where files live and how big thumbnails are: what storage code reads of the settings
    (config.Settings is one; services and utils take this, never the settings module)."""

    @property
    def storage_root(self) -> Path: ...
    @property
    def images_dir(self) -> Path: ...
    @property
    def thumbnails_dir(self) -> Path: ...
    @property
    def incoming_dir(self) -> Path: ...
    @property
    def thumbnail_size(self) -> int: ...


def storage_dirs(settings: StorageLayout) -> tuple[Path, ...]:
    return (settings.images_dir, settings.thumbnails_dir, settings.incoming_dir)


def ensure_storage_dirs(settings: StorageLayout) -> None:
    for directory in storage_dirs(settings):
        directory.mkdir(parents=True, exist_ok=True)


class StorageUnavailable(OSError):
    """The storage cannot take a file now: a folder missing (and not made again) or not
    writable (`state` "unwritable"), or less free space than the floor (`state` "full")."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message

    def __str__(self) -> str:
        return self.message


def remake_deleted_folder(directory: Path) -> None:
    """Make `directory` again when it is missing from a storage root that still holds its
    lease file (a folder deleted while the server runs). A root without that file is left
    alone: deleted, or a mount gone (its empty mount point), files put there would be lost."""
    if not directory.is_dir() and (directory.parent / LEASE_FILE).is_file():
        directory.mkdir(exist_ok=True)


def check_storage(dirs: tuple[Path, ...], min_free_bytes: int | None, *, remake: bool) -> None:
    """Raise `StorageUnavailable` unless every folder exists (`remake`: made again if it was
    deleted, see `remake_deleted_folder`), takes a new file, and has more than
    `min_free_bytes` free (None: space not checked). Writing is tried, not inferred from
    permission bits (root ignores them; a read-only mount does not)."""
    for directory in dirs:
        try:
            if remake:
                remake_deleted_folder(directory)
            with tempfile.TemporaryFile(dir=directory):
                pass
            free = shutil.disk_usage(directory).free
        except OSError as exc:
            logger.warning("storage folder %s cannot be written: %s", directory, exc)
            why = "cannot be written"
            if not (directory.parent / LEASE_FILE).is_file():
                why = "is gone with the storage root (deleted, or a mount gone?)"
            raise StorageUnavailable(
                "unwritable", f"the storage folder '{directory.name}' {why}"
            ) from exc
        if min_free_bytes is not None and free <= min_free_bytes:
            logger.warning("storage folder %s has %d bytes free", directory, free)
            raise StorageUnavailable(
                "full",
                f"the storage has {free // 2**20} MB free, under the floor of "
                f"{min_free_bytes // 2**20} MB (STORAGE_MIN_FREE_MB)",
            )


def storage_path(root: Path, relative: str) -> Path:
    """The absolute path of a stored relative path, refusing anything that escapes the root."""
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise ValueError(f"path escapes the storage root: {relative!r}")
    return path


def thumbnail_relative_path(filename: str) -> str:
    return f"thumbnails/{Path(filename).stem}.jpg"


class UploadTooLarge(Exception):
    """The stream was longer than the allowed number of bytes."""


@dataclass(frozen=True, slots=True)
class SpooledFile:
    path: Path
    sha256: str
    size: int


def spool_upload(source: BinaryIO, directory: Path, max_bytes: int) -> SpooledFile:
    """Copy `source` to a new file in `directory` in chunks, hashing as it goes.

    Never holds more than one chunk in memory; the partial file is removed on any failure.
    """
    path = directory / f"{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("xb") as out:
            while chunk := source.read(CHUNK_SIZE):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return SpooledFile(path=path, sha256=digest.hexdigest(), size=size)


class HashingSpool:
    """A file written straight into `directory` and hashed as it is written: an upload's one
    copy on disk. Write-only; `finish()` gives the `SpooledFile`, `close()` removes the file
    unless `finish()` was called and its path moved on (an aborted upload leaves nothing).

    Writes are gathered into blocks of `flush_bytes`, hashed and written when one is full.
    Starlette's `UploadFile` writes on the event loop while `tell() + len(data)` stays within
    its in-memory limit (set to `flush_bytes`), else in its thread pool: so only a copy into
    memory happens on the loop, and every hash and disk write happens in the pool."""

    _rolled = False  # what UploadFile asks of a SpooledTemporaryFile

    def __init__(self, directory: Path, flush_bytes: int = CHUNK_SIZE) -> None:
        self.path = directory / f"{uuid.uuid4().hex}.part"
        self._out: BinaryIO | None = self.path.open("xb")
        self.flush_bytes = flush_bytes
        self._buffer = bytearray()
        self._digest = hashlib.sha256()
        self.size = 0

    def tell(self) -> int:
        """Bytes waiting in memory (UploadFile adds a write to this to choose where to run it)."""
        return len(self._buffer)

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) > self.flush_bytes:
            self._flush()
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Starlette rewinds each finished part; the spool is never read back here."""
        return 0

    def finish(self) -> SpooledFile:
        """Write what is left, close the file and give its path, hash and size."""
        self._flush()
        if self._out is not None:
            self._out.close()
            self._out = None
        return SpooledFile(path=self.path, sha256=self._digest.hexdigest(), size=self.size)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self.path.unlink(missing_ok=True)

    def _flush(self) -> None:
        if self._buffer:
            if self._out is None:
                raise ValueError("write to a finished upload spool")
            self._digest.update(self._buffer)
            self._out.write(self._buffer)
            self._buffer.clear()


# --- Thumbnails ------------------------------------------------------------------------------


# Bicubic, not Lanczos: on the worker's decode (1-2x the thumbnail's side) it costs 0.65x the
# CPU (4000x3000 q92 photo: 4.9 against 7.6 ms) for a picture that differs from the Lanczos one
# by 0.37 levels on average, at most 20, over 8 on 0.02% of the pixels, and keeps 83% of its
# Laplacian energy (33 real photographs of 1680-6028 px; bilinear keeps 58%, so thumbnails would
# look softer than the photo is, which a culler judges focus by).
THUMBNAIL_RESAMPLE = Image.Resampling.BICUBIC


def make_thumbnail(img: Image.Image, size: int) -> Image.Image:
    """A copy of `img` whose longest side is at most `size`, aspect ratio kept."""
    thumb = img.copy()
    thumb.thumbnail((size, size), THUMBNAIL_RESAMPLE, reducing_gap=3.0)
    return thumb


def write_jpeg_atomically(img: Image.Image, destination: Path) -> None:
    """Write a JPEG under a temporary name, then rename: readers never see half a file."""
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.tmp")
    remake_deleted_folder(destination.parent)
    try:
        img.save(temporary, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def iter_files(directory: Path) -> Iterator[Path]:
    if directory.is_dir():
        yield from (path for path in directory.iterdir() if path.is_file())


# --- On-demand thumbnails ----------------------------------------------------------------------


def decode_for_thumbnail(source: Path, size: int) -> Image.Image:
    """`source` as oriented RGB, at least `size` on its longest side and not much more, through
    the decode gate (processing/imaging.py: JPEG drafted, other formats reduced in strips)."""
    return load_oriented_rgb(source, size)


class SingleFlight:
    """Calls with the same key share one run (later callers wait for its outcome); at most
    `limit` runs at a time. A thumbnail of a 150 MB PNG decoded six times at once would take
    gigabytes; shared and bounded, it takes one decode's worth."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[None]] = {}
        self._slots = threading.BoundedSemaphore(limit)

    def run(self, key: Hashable, work: Callable[[], None]) -> None:
        with self._lock:
            shared = self._running.get(key)
            if shared is None:
                mine: Future[None] = Future()
                self._running[key] = mine
        if shared is not None:
            shared.result()  # raises what the run raised
            return
        try:
            with self._slots:
                work()
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        else:
            mine.set_result(None)
        finally:
            with self._lock:
                del self._running[key]
