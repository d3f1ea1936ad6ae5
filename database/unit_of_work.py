"""What a transaction does around its commit, in one place and one stated order.

While a transaction runs, its effects are only noted (in `session.info`):
`move_after_commit` (an upload's spooled file into place), `remove_after_commit` (a deleted
image's files), `process_after_commit` (ids for the background worker) and `vectors_changed`
(stored vectors written or deleted; ORM changes to an image's vector, and bulk deletes of
images, are noted on their own). Then:

1. before the commit, inside the transaction: bump `vector_version` if vectors changed (row
   locks order the bumps as the commits themselves; see database.vector_version); check that
   each move's destination folder takes files: if not, the commit fails with
   `StorageUnavailable` and rolls back, rather than strand a committed upload in incoming/;
2. after the commit: move the uploaded files into place,
3. delete the files of deleted images,
4. hand the ids to the worker (their files are in place by now).

A rollback forgets everything and deletes the spooled uploads. A SAVEPOINT released or rolled
back (a lost duplicate race) is not the end of the transaction: nothing runs then.

`install(factory)` puts this on a session factory (database.create_session_factory does, for
every factory it makes; the app's lifespan does for one it is given). Noting an effect on a
session whose factory has none raises: it would silently never happen.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.event import listen
from sqlalchemy.orm import (
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    sessionmaker,
)

from database.models import Image
from database.vector_version import VECTOR_COLUMNS, bump_version
from utils.file_handling import check_storage

logger = logging.getLogger(__name__)

Handoff = Callable[[list[int]], None]

_INSTALLED = "pixal_unit_of_work"  # in a factory's (and so each of its sessions') info
_HANDOFF = "pixal_hand_ids_to"
_WORK = "pixal_pending_work"


class NoUnitOfWork(RuntimeError):
    """An effect was noted on a session that would never carry it out (a wiring bug)."""


@dataclass(slots=True)
class _Pending:
    vectors_changed: bool = False
    moves: list[tuple[Path, Path]] = field(default_factory=list)
    removals: list[Path] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)


def install(factory: sessionmaker[Session]) -> None:
    """Make every session of `factory` carry out its noted effects (idempotent)."""
    info = dict(factory.kw.get("info") or {})
    if info.get(_INSTALLED):
        return
    info[_INSTALLED] = True
    factory.configure(info=info)
    listen(factory, "before_flush", _note_flush)
    listen(factory, "do_orm_execute", _note_bulk_delete)
    listen(factory, "before_commit", _before_commit)
    listen(factory, "after_commit", _after_commit)
    listen(factory, "after_transaction_end", _after_transaction_end)


def hand_ids_to(factory: sessionmaker[Session], handoff: Handoff) -> None:
    """Where sessions of `factory` hand the ids noted by `process_after_commit`."""
    install(factory)
    info = dict(factory.kw.get("info") or {})
    info[_HANDOFF] = handoff
    factory.configure(info=info)


def is_installed(session: Session) -> bool:
    return bool(session.info.get(_INSTALLED))


def _pending(session: Session) -> _Pending:
    if not is_installed(session):
        raise NoUnitOfWork(
            "this session's factory has no unit of work (database.unit_of_work.install): "
            "what it should do after its commit would be lost"
        )
    work = session.info.get(_WORK)
    if work is None:
        work = session.info[_WORK] = _Pending()
    assert isinstance(work, _Pending)
    return work


def vectors_changed(session: Session) -> None:
    """This transaction wrote or deleted stored vectors: bump the version as it commits."""
    _pending(session).vectors_changed = True


def move_after_commit(session: Session, source: Path, destination: Path) -> None:
    """Move `source` to `destination` once the session commits; delete `source` on rollback."""
    _pending(session).moves.append((source, destination))


def remove_after_commit(session: Session, path: Path) -> None:
    """Delete `path` once the session commits; keep it on rollback."""
    _pending(session).removals.append(path)


def process_after_commit(session: Session, image_ids: Iterable[int]) -> None:
    """Hand these ids to the worker once the session commits; forget them on rollback."""
    ids = list(image_ids)
    if not ids:
        return
    if session.info.get(_HANDOFF) is None:
        raise NoUnitOfWork(
            "this session's factory hands ids to no worker (database.unit_of_work.hand_ids_to)"
        )
    _pending(session).image_ids.extend(ids)


# --- The listeners ---------------------------------------------------------------------------


def _note_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    """ORM changes: an image deleted, added with a vector, or its vector columns changed."""
    changed = any(isinstance(obj, Image) for obj in session.deleted) or any(
        isinstance(obj, Image) and obj.embedding_model is not None for obj in session.new
    )
    for obj in session.dirty:
        if changed:
            break
        if isinstance(obj, Image):
            attrs = inspect(obj).attrs
            changed = any(attrs[name].history.has_changes() for name in VECTOR_COLUMNS)
    if changed:
        vectors_changed(session)


def _note_bulk_delete(state: ORMExecuteState) -> None:
    """delete(Image) executed as a statement takes its vectors along. (A statement that updates
    vector columns is crud's to note: crud_image.update_processed_image.)"""
    if state.is_delete and any(mapper.class_ is Image for mapper in state.all_mappers):
        vectors_changed(state.session)


def _before_commit(session: Session) -> None:
    # before_commit runs before the final flush: flush first so its changes are noted too.
    session.flush()
    work = session.info.get(_WORK)
    if work is None:
        return
    if work.vectors_changed:
        bump_version(session)
        work.vectors_changed = False
    destinations = tuple(dict.fromkeys(destination.parent for _, destination in work.moves))
    # The bytes are written already: only the folder is checked. It was made again (if
    # deleted) when the request began; gone since, the upload is refused, not stranded.
    check_storage(destinations, None, remake=False)


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT was released: the transaction is still open
    work = session.info.pop(_WORK, None)
    if work is None:
        return
    for source, destination in work.moves:
        try:
            os.replace(source, destination)
        except OSError:
            # The row is committed, the bytes are still in incoming/: start-up finishes the move.
            logger.exception("could not move %s into place; start-up will retry", source)
    for path in work.removals:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            logger.exception("could not delete %s; start-up reconciliation will", path)
    if work.image_ids:
        try:
            session.info[_HANDOFF](work.image_ids)
        except Exception:
            # The rows are committed and unfinished: the next start-up's backfill queues them.
            logger.exception("could not queue images %s; the next start-up will", work.image_ids)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # Fires after _after_commit; work still here belongs to a transaction that ended without
    # committing (rollback or close): the spooled uploads go. A rolled-back SAVEPOINT is not
    # the end of the request's work.
    if transaction.parent is not None:
        return
    work = session.info.pop(_WORK, None)
    if work is None:
        return
    for source, _destination in work.moves:
        try:
            source.unlink(missing_ok=True)
        except OSError:
            logger.exception(
                "could not delete the spooled %s; start-up reconciliation will", source
            )
