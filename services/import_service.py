"""A card or folder imported in place: its photos are indexed where they are (SHA-256, one
validation decode, a row), never copied into STORAGE_ROOT, then processed like uploads.

The originals stay the photographer's: deleting such an image removes our row, thumbnail and
vector only (services/image_service.py). Only folders under IMPORT_ROOTS can be imported; a
path with `..`, a symlink that leads out of its root and anything but a regular file are
refused. A file that changes or disappears later is reported (`GET /imports/{id}`: `changed`,
`missing`; the image's own download answers 404), never an error page.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from crud import crud_batch, crud_image, crud_import
from database.models import FolderImport, Image
from processing.decode_gate import DecodeBusy, DecodeTooLarge
from processing.validation import InspectedImage, InvalidImage, inspect_image_file
from services import companions
from services.background import enqueue_processing
from services.background.handoff import decode_shelf
from services.background.pipeline import analysis_side
from services.errors import Forbidden, InvalidInput, NotFound

logger = logging.getLogger(__name__)

# Companions a camera or an editor leaves beside the photos: not photos, not failures.
SKIPPED_SUFFIXES = frozenset({".xmp", ".thm", ".ctg", ".lrv", ".json", ".txt", ".db", ".ini"})
CHUNK = 16  # files per transaction: progress moves, and a crash loses at most this much work
MAX_FAILURES_KEPT = 100
_HASH_BLOCK = 1 << 20
# What became of an indexed file: a new image, the second file of an image (a RAW+JPEG pair's,
# services/companions.py), the main file of one (a JPEG in its RAW's place), or bytes imported
# already.
Stored = Literal["new", "paired", "replaced", "duplicate"]


class ImportSettings(Protocol):
    @property
    def import_roots(self) -> list[Path]: ...
    @property
    def max_image_pixels(self) -> int: ...
    @property
    def thumbnail_size(self) -> int: ...
    @property
    def decode_concurrency(self) -> int: ...
    @property
    def storage_root(self) -> Path: ...


@dataclass(frozen=True, slots=True)
class _Indexed:
    path: Path
    relative: str
    sha256: str
    size: int
    mtime_ns: int
    inspected: InspectedImage
    keep_side: int


def resolve_folder(roots: Sequence[Path], path: str) -> Path:
    """The real folder `path` names under one of `roots` (relative paths are taken from each
    root in turn); raises Forbidden, NotFound or InvalidInput."""
    if not roots:
        raise Forbidden(
            "Imports in place are off: set IMPORT_ROOTS to the folders (comma-separated) "
            "under which cards and folders may be imported, then restart the server."
        )
    if "\x00" in path or ".." in Path(path).parts:
        raise InvalidInput("The path must not contain '..' or NUL characters.")
    real_roots = [root.resolve() for root in roots]
    candidates = [Path(path)] if Path(path).is_absolute() else [r / path for r in real_roots]
    for candidate in candidates:
        try:
            real = candidate.resolve()
            if not any(real.is_relative_to(root) for root in real_roots):
                continue
            if not real.exists():
                raise NotFound(f"No folder at {path!r} under the import roots.")
            is_dir = real.is_dir()
        except RuntimeError as exc:  # Path.resolve's symlink loop (Python 3.11)
            raise InvalidInput(f"{path!r} goes round in a loop of symbolic links.") from exc
        except OSError as exc:
            raise _unresolvable(path, exc) from exc
        if not is_dir:
            raise InvalidInput(f"{path!r} is not a folder.")
        return real
    raise Forbidden(f"{path!r} is not under an import root (IMPORT_ROOTS).")


def _unresolvable(path: str, exc: OSError) -> NotFound | InvalidInput | Forbidden:
    """What a path the file system refuses to look up is, as a client error."""
    if exc.errno == errno.ENAMETOOLONG:  # the schema allows it; no folder can be there
        return NotFound(
            f"No folder at {path[:100]!r}... under the import roots: the path is too long for "
            f"the file system (a name over 255 bytes, or the whole over 4,096)."
        )
    if exc.errno == errno.ELOOP:
        return InvalidInput(f"{path!r} goes round in a loop of symbolic links.")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return Forbidden(f"The server may not read {path!r} under the import roots.")
    raise exc


def start_import(
    session: Session, settings: ImportSettings, path: str, batch_name: str
) -> FolderImport:
    """Record an import of the folder into a new batch; `run_import` does the work."""
    folder = resolve_folder(settings.import_roots, path)
    batch = crud_batch.create_batch(session, batch_name)
    return crud_import.add_import(
        session,
        FolderImport(
            path=str(folder),
            batch_id=batch.id,
            status="pending",
            found=0,
            done=0,
            failed=0,
            duplicates=0,
            refused=0,
        ),
    )


def get_import(session: Session, import_id: int) -> FolderImport:
    folder_import = crud_import.get_import(session, import_id)
    if folder_import is None:
        raise NotFound(f"Import {import_id} not found.")
    return folder_import


def source_state(path: str, size: int, mtime_ns: int | None) -> str:
    """`ok`, `changed` (size or modification time differ from when it was hashed) or
    `missing`, for an original imported in place."""
    try:
        info = os.stat(path)
    except OSError:
        return "missing"
    if not stat.S_ISREG(info.st_mode):
        return "missing"
    return "ok" if (info.st_size, info.st_mtime_ns) == (size, mtime_ns) else "changed"


def source_report(session: Session, folder_import: FolderImport) -> dict[str, int]:
    """How many of the import's originals changed or disappeared since they were indexed."""
    counts = {"changed": 0, "missing": 0}
    # Only once it has ended: while it runs, its files are being read (and a progress poll
    # stays one small query).
    if folder_import.batch_id is None or folder_import.status not in {"complete", "failed"}:
        return counts
    ids = sorted(crud_batch.member_ids(session, folder_import.batch_id))
    for path, size, mtime in crud_import.in_place_sources(session, ids):
        state = source_state(path, size, mtime)
        if state in counts:
            counts[state] += 1
    return counts


def find_files(folder: Path) -> tuple[list[Path], int]:
    """The regular files below `folder` in name order, and how many entries were refused
    (symlinks leading out of the folder, devices, sockets, FIFOs)."""
    files: list[Path] = []
    refused = 0
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or Path(name).suffix.lower() in SKIPPED_SUFFIXES:
                continue
            path = Path(directory, name)
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(folder) or not target.is_file():
                    refused += 1
                    continue
                path = target
            try:
                mode = path.stat().st_mode
            except OSError:
                refused += 1
                continue
            if not stat.S_ISREG(mode):
                refused += 1
                continue
            files.append(path)
    return files, refused


class TakenOver(Exception):
    """Another process took this import over (it saw no heartbeat for IMPORT_STALE_SECONDS):
    this one stops without writing, the other finishes it."""


def run_import(
    factory: sessionmaker[Session],
    settings: ImportSettings,
    import_id: int,
    *,
    runner: str | None = None,
) -> FolderImport | None:
    """Index every file of the import's folder, CHUNK files per transaction. `runner`: the
    token `resume_stale_imports` claimed the import with, from a process that died; the files
    it had indexed already are skipped. Every write checks the import is still this run's."""
    claimed = runner is not None
    runner = runner or uuid.uuid4().hex
    with factory() as session:
        folder_import = crud_import.get_import(session, import_id, for_update=True)
        if folder_import is None or folder_import.status != ("running" if claimed else "pending"):
            return folder_import
        if claimed and folder_import.runner != runner:
            return folder_import
        folder = Path(folder_import.path)
        folder_import.status = "running"
        folder_import.runner = runner
        folder_import.started_at = folder_import.started_at or datetime.now(UTC)
        folder_import.heartbeat_at = datetime.now(UTC)
        session.commit()
    try:
        files, refused = find_files(folder)
        with factory() as session:
            found = len(files)
            if claimed:
                files = _not_yet_indexed(session, import_id, runner, folder, files)
            _update(
                session, import_id, runner, found=found, refused=refused, done=found - len(files)
            )
            session.commit()
        # Files are read and checked on as many threads as decodes may run at once (the decode
        # gate bounds them anyway), one chunk ahead of the rows, which are written CHUNK at a
        # time on this thread: reading never waits for the database, nor the database for
        # reading, and at most two chunks of decodes are held.
        chunks = [files[start : start + CHUNK] for start in range(0, len(files), CHUNK)]
        with ThreadPoolExecutor(settings.decode_concurrency, "import") as pool:

            def check(chunk: list[Path]) -> list[Future[_Indexed | str]]:
                return [pool.submit(_index_file, settings, folder, path) for path in chunk]

            ahead = check(chunks[0]) if chunks else []
            for k, chunk in enumerate(chunks):
                current, ahead = ahead, check(chunks[k + 1]) if k + 1 < len(chunks) else []
                outcomes = [future.result() for future in current]
                _index_chunk(
                    factory,
                    settings.storage_root,
                    import_id,
                    runner,
                    folder,
                    list(zip(chunk, outcomes, strict=True)),
                )
    except TakenOver:
        logger.warning("import %d was taken over by another process; this one stops", import_id)
        return None
    except Exception as exc:
        logger.exception("import %d failed", import_id)
        with factory() as session, suppress(TakenOver):
            _update(
                session, import_id, runner, status="failed", error=str(exc) or type(exc).__name__
            )
            session.commit()
        raise
    with factory() as session:
        with suppress(TakenOver):
            _update(session, import_id, runner, status="complete")
            session.commit()
        return crud_import.get_import(session, import_id)


def resume_stale_imports(
    factory: sessionmaker[Session], settings: ImportSettings, stale_seconds: float
) -> list[int]:
    """Finish the imports whose process died (no heartbeat for `stale_seconds`; 0 at the
    start-up of a server alone on its storage: then every unfinished import is an orphan).
    Returns the ids taken over."""
    now = datetime.now(UTC)
    with factory() as session:
        claimed = crud_import.claim_stale(session, now - timedelta(seconds=stale_seconds), now)
        session.commit()
    for import_id, runner in claimed:
        logger.warning("resuming import %d, left unfinished by a process that stopped", import_id)
        try:
            run_import(factory, settings, import_id, runner=runner)
        except Exception:
            pass  # logged and recorded as failed by run_import; the next one still runs
    return [import_id for import_id, _ in claimed]


def _not_yet_indexed(
    session: Session, import_id: int, runner: str, folder: Path, files: list[Path]
) -> list[Path]:
    """The files a resumed import still has to do: not those with a row in its batch, nor
    those it recorded as failed (their count is exact while no more than MAX_FAILURES_KEPT
    failed; beyond that the unrecorded ones are tried, and counted, again)."""
    folder_import = _update(session, import_id, runner)
    indexed = (
        crud_import.indexed_sources(session, folder_import.batch_id)
        if folder_import.batch_id is not None
        else set()
    )
    failed = {failure["file"] for failure in folder_import.failures or []}
    if folder_import.failed <= MAX_FAILURES_KEPT:
        folder_import.failed = len(failed)
    return [p for p in files if str(p) not in indexed and _relative(folder, p) not in failed]


def _update(session: Session, import_id: int, runner: str, **values: object) -> FolderImport:
    """The import's row, locked, with `values` set and its heartbeat renewed; TakenOver when
    another process claimed it meanwhile."""
    folder_import = crud_import.get_import(session, import_id, for_update=True)
    assert folder_import is not None
    if folder_import.runner != runner:
        raise TakenOver(import_id)
    for name, value in values.items():
        setattr(folder_import, name, value)
    folder_import.heartbeat_at = datetime.now(UTC)
    if values.get("status") in {"complete", "failed"}:
        folder_import.finished_at = datetime.now(UTC)
    return folder_import


def _index_chunk(
    factory: sessionmaker[Session],
    storage_root: Path,
    import_id: int,
    runner: str,
    folder: Path,
    outcomes: list[tuple[Path, _Indexed | str]],
) -> None:
    indexed: list[_Indexed] = []
    failures: list[dict[str, str]] = []
    for path, outcome in outcomes:
        if isinstance(outcome, _Indexed):
            indexed.append(outcome)
        else:
            failures.append({"file": _relative(folder, path), "reason": outcome})
    with factory() as session:
        crud_image.lock_hashes(session, [item.sha256 for item in indexed])
        companions.lock_stems(session, [item.path.name for item in indexed])
        ids: list[int] = []
        new_ids: list[int] = []
        duplicates = 0
        for item in companions.rendered_first(indexed, lambda item: item.inspected.mime_type):
            image, outcome = _store(session, storage_root, item)
            ids.append(image.id)
            duplicates += outcome == "duplicate"
            if outcome in {"new", "replaced"}:
                new_ids.append(image.id)
                if item.inspected.pixels is not None:
                    # The check's decode, handed to the worker as an upload's is.
                    decode_shelf().offer(item.sha256, item.inspected.pixels, item.keep_side)
        folder_import = _update(session, import_id, runner)
        if folder_import.batch_id is not None:
            crud_batch.add_members(session, folder_import.batch_id, ids)
        folder_import.done += len(outcomes)
        folder_import.failed += len(failures)
        folder_import.duplicates += duplicates
        kept = list(folder_import.failures or [])
        folder_import.failures = (kept + failures)[:MAX_FAILURES_KEPT]
        enqueue_processing(session, new_ids)
        session.commit()


def _relative(folder: Path, path: Path) -> str:
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else path.name


def _index_file(settings: ImportSettings, folder: Path, path: Path) -> _Indexed | str:
    """The file hashed and checked, or why it is not imported."""
    try:
        before = path.stat()
        digest = hashlib.sha256()
        with path.open("rb") as file:
            while block := file.read(_HASH_BLOCK):
                digest.update(block)
        if before.st_size == 0:
            return "file is empty"
        keep_side = analysis_side(settings.thumbnail_size) if decode_shelf().capacity_bytes else 0
        inspected = inspect_image_file(path, settings.max_image_pixels, keep_side)
    except (InvalidImage, DecodeTooLarge) as exc:
        return str(exc)
    except DecodeBusy as exc:
        return f"the server was too busy to check it: {exc}"
    except OSError as exc:
        return f"could not be read: {exc.strerror or exc}"
    return _Indexed(
        path=path,
        relative=_relative(folder, path),
        sha256=digest.hexdigest(),
        size=before.st_size,
        mtime_ns=before.st_mtime_ns,
        inspected=inspected,
        keep_side=keep_side,
    )


def _store(session: Session, storage_root: Path, item: _Indexed) -> tuple[Image, Stored]:
    existing = crud_image.get_image_by_hash(session, item.sha256)
    if existing is not None:
        return existing, "duplicate"
    filename = f"{uuid.uuid4().hex}{item.inspected.extension}"
    key = companions.file_key(item.path.name, item.inspected.mime_type, item.inspected.metadata)
    file = companions.CompanionFile(
        original_filename=item.path.name[:255],
        file_path=f"in-place/{filename}",
        source_path=str(item.path),
        source_mtime_ns=item.mtime_ns,
        sha256=item.sha256,
        size=item.size,
        mime_type=item.inspected.mime_type,
    )
    paired = companions.attach_to_partner(session, storage_root, key, file)
    if paired is not None:
        return paired.image, "replaced" if paired.reprocess else "paired"
    metadata, _adjusted = crud_image.fit_to_columns(Image, item.inspected.metadata.as_dict())
    image = Image(
        filename=filename,
        original_filename=item.path.name[:255],
        # Nothing is stored under STORAGE_ROOT: the original is `source_path`.
        file_path=f"in-place/{filename}",
        source_path=str(item.path),
        source_mtime_ns=item.mtime_ns,
        image_hash=item.sha256,
        file_size=item.size,
        mime_type=item.inspected.mime_type,
        has_thumbnail=False,
        **metadata,
    )
    try:
        with session.begin_nested():
            crud_image.add_image(session, image)
    except IntegrityError:
        existing = crud_image.get_image_by_hash(session, item.sha256)
        if existing is None:
            raise
        return existing, "duplicate"
    return image, "new"
