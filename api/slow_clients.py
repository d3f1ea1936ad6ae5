"""Read deadlines for request heads: a connection sends its whole head within a deadline, and
the connections still sending one are bounded.

uvicorn's h11 protocol waits for a request head as long as a client likes (its keep-alive
timer runs only between requests, and the first byte of the next head stops it): 300
connections that each sent half a head, with 50 slow bodies, were held for 40 s and took the
server from 21 to 371 file descriptors (issue 18). Here a connection that has not sent its
complete head within `header_timeout` seconds is closed, and when `max_pending_heads`
connections are already waiting for theirs, the oldest is closed to make room
(`PendingHeads`): a real client sends its head in milliseconds, so it is the slow ones that
go. Slow bodies are the request guard's (api/guards.py); the rest of a body that the answer
did not need (a redirect, a 404) is drained under the same deadline and bound as a head.

Served by `run_server.py` (`uvicorn.run(http=head_deadline_protocol(...))`).
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)


# A connection is not closed to make room before it had this long to send its head: the
# server takes a burst of connections before it reads any, and a real client's head may be in
# that burst. Past twice the limit, the oldest goes whatever its age.
FAIR_CHANCE_SECONDS = 1.0


class PendingHeads:
    """The connections of one server still sending a request head, oldest first, at most
    `limit` (twice that for a burst younger than FAIR_CHANCE_SECONDS): adding one more closes
    the oldest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.since: dict[HeadDeadlineProtocol, float] = {}  # oldest first

    def add(self, connection: HeadDeadlineProtocol, now: float) -> None:
        while len(self.since) >= self.limit:
            oldest, since = next(iter(self.since.items()))
            if now - since < FAIR_CHANCE_SECONDS and len(self.since) < 2 * self.limit:
                break
            oldest.close_for_slow_head()
        self.since[connection] = now

    def discard(self, connection: HeadDeadlineProtocol) -> None:
        self.since.pop(connection, None)


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head (see the module)."""

    header_timeout: float
    pending: PendingHeads

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._serving_nobody() and not self.transport.is_closing():
            self._await_head()
        else:
            self._stop_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def close_for_slow_head(self) -> None:
        """The head came too slowly (or a newer connection needs the place): close, no answer."""
        self._stop_waiting()
        if not self.transport.is_closing():
            logger.debug("closing %s: no complete request head in time", self.client)
            self.transport.close()

    def _serving_nobody(self) -> bool:
        """The connection waits on its client with no request being served: part of a head
        came (the first one, or the next on a kept-alive connection, whose idle wait is
        uvicorn's keep-alive timer, stopped by this first byte), or the rest of a body that the
        answer already sent did not read (uvicorn drains it for as long as it trickles)."""
        state = self.conn.their_state
        answered = self.cycle is not None and self.cycle.response_complete
        return state is h11.IDLE or (state is h11.SEND_BODY and answered)

    def _await_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self.close_for_slow_head)
            self.pending.add(self, self.loop.time())

    def _stop_waiting(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self.pending.discard(self)


def head_deadline_protocol(
    header_timeout: float, max_pending_heads: int
) -> type[HeadDeadlineProtocol]:
    """A protocol class for one server: its own deadline and its own bounded set of pending
    connections (uvicorn builds one instance per connection from the class)."""
    return type(
        "HeadDeadlineProtocol",
        (HeadDeadlineProtocol,),
        {"header_timeout": header_timeout, "pending": PendingHeads(max_pending_heads)},
    )
