"""What both task backends share: the ids waiting to be handled, and stopping their thread."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

from services.background.retry import Backoff, is_transient

logger = logging.getLogger(__name__)


class PendingIds:
    """Ids waiting in order, each at most once, guarded by one condition that the backend's
    thread waits on."""

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._pending: set[int] = set()
        self._changed = threading.Condition()
        self._stopping = False

    def submit(self, image_ids: Iterable[int]) -> None:
        """Queue ids; an id already waiting is not queued twice."""
        with self._changed:
            for image_id in image_ids:
                if image_id not in self._pending:
                    self._pending.add(image_id)
                    self._order.append(image_id)
            self._changed.notify_all()

    @property
    def queued(self) -> int:
        """Ids this process holds that are not handled yet (a batch waiting for a retry too)."""
        with self._changed:
            return len(self._pending)

    def _stop_thread(self, thread: threading.Thread, timeout: float) -> None:
        """Ask the thread to stop after what it has in hand, and wait for it."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if thread.is_alive():
            thread.join(timeout)

    def _requeue_front(self, batch: list[int]) -> None:
        """Put a batch that failed for a transient reason back at the front of the queue."""
        with self._changed:
            for image_id in reversed(batch):
                if image_id not in self._pending:
                    self._pending.add(image_id)
                    self._order.appendleft(image_id)

    def _sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less when asked to stop."""
        with self._changed:
            self._changed.wait_for(lambda: self._stopping, seconds)

    def _submit_unfinished(
        self, find_pending: Callable[[], Iterable[int] | None], backoff: Backoff
    ) -> None:
        """Queue the unfinished work of earlier runs; waits out a database that is down, and
        asks again later while `find_pending` answers None (it cannot tell yet)."""
        while not self._stopping:
            try:
                pending = find_pending()
                if pending is None:
                    self._sleep(backoff.next_delay())
                    continue
                self.submit(pending)
                break
            except Exception as exc:
                if not is_transient(exc):
                    logger.exception("start-up backfill failed; new uploads are still handled")
                    break
                delay = backoff.next_delay()
                logger.warning("start-up backfill failed (%s); again in %.1f s", exc, delay)
                self._sleep(delay)
        backoff.reset()
