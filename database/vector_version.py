"""Which committed state of the stored vectors a reader has seen: one database counter.

Every transaction that changes vectors (writes `features` or `embedding_model`, or deletes an
image) bumps `vector_version` just before it commits, inside the same transaction
(database.unit_of_work). Row locks order those bumps as the commits themselves, so "the
version I read" names exactly one committed state, whatever process wrote it (the server, a
second server, Celery workers). The in-memory similarity index reloads what changed when the
number moves; nothing is inferred from counts or ids.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from database.models import VectorVersion

VECTOR_COLUMNS = frozenset({"features", "embedding_model"})


def current_version(session: Session) -> int:
    """The committed version this session's transaction sees."""
    return int(session.scalar(select(VectorVersion.version).where(VectorVersion.id == 1)) or 0)


def bump_version(session: Session) -> None:
    """Move the version on, in the session's transaction (the row stays locked until it ends)."""
    session.execute(
        update(VectorVersion).where(VectorVersion.id == 1).values(version=VectorVersion.version + 1)
    )
