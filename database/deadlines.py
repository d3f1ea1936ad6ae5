"""Time bounds on PostgreSQL: no request waits on a silent database for longer than a bound.

A database behind a network that stops forwarding (no RST, no FIN) leaves a socket that
neither answers nor fails: requests hung for the whole 90 s of such a partition, and `GET /`,
which needs no database, waited 30 s for a thread the hung requests held. Four bounds:

- libpq: `connect_timeout`, TCP keepalives and `tcp_user_timeout` (a dead peer is noticed by
  the kernel), and server-side `statement_timeout` / `lock_timeout`;
- psycopg2's wait callback (`set_wait_callback`): every wait for the server's next bytes has a
  deadline (`answer_timeout`). Past it, a probe (a new connection, `SELECT 1`, bounded by
  PROBE_TIMEOUT) tells a busy server (a long statement, a lock wait: keep waiting, up to the
  statement timeout) from a silent network (the probe gets no answer either: the connection
  is closed and the query fails, which SQLAlchemy reports as a disconnect, a JSON 503 with
  Retry-After in the API). The kernel's keepalives would not see a proxy or a half-dead
  route that still acknowledges packets; this does.
- the pool: `pool_timeout`, shorter than a client's patience;
- a circuit breaker (`DatabaseBreaker`): after a fault, requests answer 503 at once for a
  cool-down instead of each waiting out the deadline on a thread, then one probe goes through.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
from sqlalchemy.exc import DBAPIError


@dataclass(frozen=True, slots=True)
class DatabaseDeadlines:
    """Seconds; see the module docstring. Plain numbers: the API edge reads them from Settings."""

    connect_timeout: int = 3
    answer_timeout: float = 4.0
    statement_timeout: float = 30.0
    lock_timeout: float = 10.0
    pool_timeout: float = 3.0
    keepalive_idle: int = 5
    keepalive_interval: int = 2
    keepalive_count: int = 2
    breaker_cooldown: float = 5.0

    def connect_args(self) -> dict[str, Any]:
        """libpq connection parameters for these bounds."""
        options = (
            f"-c statement_timeout={int(self.statement_timeout * 1000)} "
            f"-c lock_timeout={int(self.lock_timeout * 1000)}"
        )
        return {
            "connect_timeout": self.connect_timeout,
            "keepalives": 1,
            "keepalives_idle": self.keepalive_idle,
            "keepalives_interval": self.keepalive_interval,
            "keepalives_count": self.keepalive_count,
            # Unacknowledged data for this long: the connection is dead (milliseconds).
            "tcp_user_timeout": int(self.answer_timeout * 1000),
            "options": options,
        }


# Key in `Session.info`: a reader that caught a lost-connection fault itself sets it, so the
# code that owns the session still opens the breaker.
DATABASE_LOST = "pixal_database_lost"


def lost_connection(exc: BaseException) -> bool:
    """True for a fault that says the connection to the database is gone. A pool timeout is
    not one: the database answers, this process is only busy (still a 503, but the breaker
    stays closed)."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class DatabaseSilent(psycopg2.OperationalError):  # type: ignore[misc]
    """The server sent nothing for longer than the deadline."""


class DatabaseBreaker:
    """Open for `cooldown` seconds after a fault: callers are refused at once. Then one probe
    at a time is let through; its success closes the breaker, its failure opens it again."""

    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._opened_at: float | None = None
        self._probing = False

    def admit(self) -> bool:
        """True: go ahead (call `settle` afterwards). False: answer 503 now."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or time.monotonic() - self._opened_at < self.cooldown:
                return False
            self._probing = True
            return True

    def settle(self, failed: bool) -> None:
        with self._lock:
            self._probing = False
            if failed:
                self._opened_at = time.monotonic()
            elif self._opened_at is not None:
                self._opened_at = None

    def trip(self) -> None:
        self.settle(failed=True)

    @property
    def opened(self) -> bool:
        """`is_open` without the lock, for the hot path (a stale answer only costs a lock)."""
        return self._opened_at is not None

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None


# How long a probe, or any wait while the breaker is open, may last.
PROBE_TIMEOUT = 1.5
# One process talks to one database: the wait callback, its probe and the breaker are
# process-wide.
_state = {"answer_timeout": DatabaseDeadlines().answer_timeout, "connect": 3.0, "longest": 35.0}
_breaker = DatabaseBreaker(DatabaseDeadlines().breaker_cooldown)
_probe: list[Callable[[], Any]] = []
_probing = threading.local()


def database_breaker() -> DatabaseBreaker:
    return _breaker


def install_deadlines(deadlines: DatabaseDeadlines, connect: Callable[[], Any]) -> None:
    """Make every psycopg2 wait in this process bounded (idempotent; last settings win).
    `connect` opens a new DBAPI connection to the database, for the probe."""
    global _breaker
    _state["answer_timeout"] = deadlines.answer_timeout
    _state["connect"] = float(deadlines.connect_timeout)
    _state["longest"] = deadlines.statement_timeout + deadlines.answer_timeout
    _probe[:] = [connect]
    if _breaker.cooldown != deadlines.breaker_cooldown:
        _breaker = DatabaseBreaker(deadlines.breaker_cooldown)
    psycopg2.extensions.set_wait_callback(wait_with_deadline)


def wait_with_deadline(conn: Any) -> None:
    """psycopg2's `wait_select`, with a deadline on each silence (see the module docstring).

    Raising here makes psycopg2 close the connection (it cannot know where the protocol
    stands), so the pool discards it."""
    connecting = conn.status == psycopg2.extensions.STATUS_SETUP
    limit = _state["connect"] if connecting else _state["answer_timeout"]
    if _breaker.is_open or getattr(_probing, "active", False):
        # A probe, or another connection just found the database silent: a moment is enough
        # to show whether it answers.
        limit = min(limit, PROBE_TIMEOUT)
    began = time.monotonic()
    while True:
        try:
            state = conn.poll()
        except KeyboardInterrupt:
            conn.cancel()
            continue
        if state == psycopg2.extensions.POLL_OK:
            if _breaker.opened:
                _breaker.settle(failed=False)  # it answered: the database is back
            return
        if state == psycopg2.extensions.POLL_READ:
            events = select.POLLIN
        elif state == psycopg2.extensions.POLL_WRITE:
            events = select.POLLOUT
        else:
            raise psycopg2.OperationalError(f"bad poll state: {state}")
        # poll, not select: a busy server has descriptors past select's limit of 1024.
        poller = select.poll()
        poller.register(conn.fileno(), events)
        if poller.poll(limit * 1000):
            continue
        waited = time.monotonic() - began
        if not connecting and waited < _state["longest"] and _server_answers():
            continue  # a long statement or a lock wait on a server that is there
        _breaker.trip()
        what = "connect" if connecting else "answer"
        raise DatabaseSilent(f"the database did not {what} within {waited:.0f} s")


def _server_answers() -> bool:
    """Whether a new connection gets an answer to `SELECT 1` within PROBE_TIMEOUT each."""
    if not _probe or getattr(_probing, "active", False) or _breaker.is_open:
        return False
    _probing.active = True
    try:
        conn = _probe[0]()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        finally:
            conn.close()
    except psycopg2.Error:
        return False
    finally:
        _probing.active = False
