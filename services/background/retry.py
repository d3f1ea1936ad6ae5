"""Which failures are worth waiting out, and how long to wait between tries.

A database that is down or restarting, a pool with no free connection, a storage mount that
went away or a full disk are not the image's fault: the work waits and is tried again until it
succeeds. Only an image that is itself broken (it cannot be decoded) is marked failed, by the
pipeline.
"""

from __future__ import annotations

import random

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from processing.decode_gate import DecodeBusy

# Database outages (OperationalError: connection refused or lost, server shutting down;
# InterfaceError: psycopg2's "connection already closed"), pool exhaustion, and storage errors
# (OSError: disk full, read-only or vanished mount), and a decode budget taken by others.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    DecodeBusy,
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
    OSError,
)

FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 5.0


def is_transient(exc: BaseException) -> bool:
    """True when waiting and trying again can make `exc` go away."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Backoff:
    """Exponential delays, jittered: about 0.5, 1, 2, 4, then `cap` seconds; reset on success."""

    def __init__(self, first: float = FIRST_DELAY_SECONDS, cap: float = MAX_DELAY_SECONDS) -> None:
        self._first = first
        self._cap = cap
        self._failures = 0

    def next_delay(self) -> float:
        ceiling = min(self._cap, self._first * 2.0**self._failures)
        self._failures = min(self._failures + 1, 32)
        # Half fixed, half random: workers that failed together do not all retry at once.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self._failures = 0
