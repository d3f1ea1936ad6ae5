"""Which committed state of the stored vectors a reader has seen: one database counter.

Every transaction that changes vectors (writes `features` or `embedding_model`, or deletes an
image) bumps `vector_version` just before it commits, inside the same transaction. Row locks
order those bumps as the commits themselves, so "the version I read" names exactly one
committed state, whatever process wrote it (the server, a second server, Celery workers).
The in-memory similarity index reloads what changed when the number moves; nothing is
inferred from counts or ids.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, select, update
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from database.models import Image, VectorVersion

_CHANGED = "vectors_changed"
VECTOR_COLUMNS = frozenset({"features", "embedding_model"})
_installed = False


def current_version(session: Session) -> int:
    """The committed version this session's transaction sees."""
    return int(session.scalar(select(VectorVersion.version).where(VectorVersion.id == 1)) or 0)


def track_vector_changes() -> None:
    """Make every session of this process bump the version when it changes vectors (once)."""
    global _installed
    if _installed:
        return
    # On the Session class: every factory (the app's, the worker's, a test's) is covered.
    event.listen(Session, "before_flush", _note_unit_of_work)
    event.listen(Session, "do_orm_execute", _note_statement)
    event.listen(Session, "before_commit", _bump_if_changed)
    event.listen(Session, "after_rollback", _forget)
    _installed = True


def _note_unit_of_work(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, Image):
            session.info[_CHANGED] = True
    for obj in session.new:
        if isinstance(obj, Image) and obj.embedding_model is not None:
            session.info[_CHANGED] = True
    for obj in session.dirty:
        if isinstance(obj, Image):
            attrs = inspect(obj).attrs
            if any(attrs[name].history.has_changes() for name in VECTOR_COLUMNS):
                session.info[_CHANGED] = True


def _note_statement(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete) or state.session.info.get(_CHANGED):
        return
    if not any(mapper.class_ is Image for mapper in state.all_mappers):
        return
    if state.is_delete:
        state.session.info[_CHANGED] = True
        return
    # update(Image).values(...): only a write to the vector columns counts. Statements whose
    # values cannot be read here (executemany) count, to be safe.
    values = getattr(state.statement, "_values", None)
    names = {getattr(key, "key", key) for key in values} if values else VECTOR_COLUMNS
    if names & VECTOR_COLUMNS:
        state.session.info[_CHANGED] = True


def _bump_if_changed(session: Session) -> None:
    # before_commit runs before the final flush: flush first so its changes are noted too.
    session.flush()
    if session.info.pop(_CHANGED, False):
        session.execute(
            update(VectorVersion)
            .where(VectorVersion.id == 1)
            .values(version=VectorVersion.version + 1)
        )


def _forget(session: Session) -> None:
    session.info.pop(_CHANGED, None)
