"""Lock conflicts between concurrent writes on PostgreSQL: a deadlock or a serialisation
failure aborts one transaction. That is neither an outage (503) nor a defect (500): the write
is tried again in a new transaction, and if it keeps losing, the client hears 409.

Writers take their locks in one order (upload hashes, then batch rows by id, then image rows
by id; see crud), so a deadlock should not happen; this is the net below that rule.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from services.errors import Conflict

logger = logging.getLogger(__name__)

# SQLSTATEs of a transaction that lost a lock conflict and may simply be tried again.
DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"
LOCK_CONFLICTS = frozenset({DEADLOCK_DETECTED, SERIALIZATION_FAILURE})
# A row referenced by the write was deleted by a transaction that committed after the write
# checked it exists: a lost race too, for a write that checks what it references first (its
# next try answers 404), never a 500.
FOREIGN_KEY_VIOLATION = "23503"
RETRIES = 3

P = ParamSpec("P")
R = TypeVar("R")


class LockConflict(Conflict):
    """A write kept losing lock conflicts with concurrent writes."""


def is_lock_conflict(exc: BaseException, codes: frozenset[str] = LOCK_CONFLICTS) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "pgcode", None) in codes


def conflict_error() -> LockConflict:
    return LockConflict("Concurrent changes to the same rows collided; try again.")


def _retrying(
    func: Callable[Concatenate[Session, P], R], codes: frozenset[str]
) -> Callable[Concatenate[Session, P], R]:
    @functools.wraps(func)
    def run(session: Session, /, *args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, RETRIES + 1):
            try:
                return func(session, *args, **kwargs)
            except DBAPIError as exc:
                if not is_lock_conflict(exc, codes):
                    raise
                session.rollback()
                logger.info("%s lost a lock conflict (try %d): %s", func.__name__, attempt, exc)
                if attempt == RETRIES:
                    raise conflict_error() from exc
                # Apart, so the transactions that collided do not collide again at once.
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")

    return run


def retry_on_lock_conflict(
    func: Callable[Concatenate[Session, P], R],
) -> Callable[Concatenate[Session, P], R]:
    """Run `func(session, ...)` again, in a new transaction, when it loses a lock conflict;
    after RETRIES tries, raise LockConflict (409). The session must hold nothing else of the
    request's: the retry rolls its transaction back."""
    return _retrying(func, LOCK_CONFLICTS)


def retry_on_lost_race(
    func: Callable[Concatenate[Session, P], R],
) -> Callable[Concatenate[Session, P], R]:
    """retry_on_lock_conflict, and also when a row `func` checked and then referenced was
    deleted meanwhile (a foreign key violation): its next try finds the row gone."""
    return _retrying(func, LOCK_CONFLICTS | {FOREIGN_KEY_VIOLATION})
