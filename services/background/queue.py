"""Where image processing is sent: the interface both task backends implement, and the one
call services make to ask for work.

A service calls `enqueue_processing(session, ids)` inside its transaction; the ids are handed
to the queue once that transaction commits and forgotten if it rolls back, so a worker never
looks for a row that is not there, and nothing outside this package knows how work runs.

`TASK_BACKEND=inline` (the default): `services.background.inline.ProcessingWorker`, a thread of
the API process. `TASK_BACKEND=celery`: `CeleryTaskQueue` below sends the ids to Celery workers
(`python -m services.background.celery_worker`), and the API process runs no model at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from database import unit_of_work
from services.background.pending import PendingIds
from services.background.retry import Backoff

logger = logging.getLogger(__name__)


class TaskQueue(Protocol):
    """Queue these image ids for thumbnail, quality and embedding."""

    def start(self) -> None: ...
    def stop(self, timeout: float = 30.0) -> None: ...
    def submit(self, image_ids: Iterable[int]) -> None: ...

    @property
    def queued(self) -> int:
        """Ids this process holds that no worker has been handed yet."""
        ...

    def wait_idle(self, timeout: float | None = None) -> bool: ...


def enqueue_processing(session: Session, image_ids: Iterable[int]) -> None:
    """Process these images (thumbnail, quality, embedding) once `session` commits."""
    unit_of_work.process_after_commit(session, image_ids)


def install_queue(factory: sessionmaker[Session], queue: TaskQueue) -> None:
    """Make sessions from `factory` hand what they enqueue to `queue` when they commit (after
    their files are in place: database.unit_of_work states the order)."""
    unit_of_work.hand_ids_to(factory, queue.submit)


class CeleryTaskQueue(PendingIds):
    """Sends ids to Celery, EMBEDDING_BATCH_SIZE ids per task (one task embeds one batch).

    Sending happens on a thread of its own, so a commit never waits for the broker. A broker
    that cannot be reached keeps the ids here, sent again with backoff until it answers (and
    they stay pending in the database: if this process ends first, the next start-up sends
    them). Nothing is counted once sent: progress comes from the database (`/health`'s
    pending counts). `queued` is what has not been sent yet."""

    def __init__(
        self,
        send: Callable[[list[int]], Any],
        batch_size: int,
        backfill: Callable[[], list[int] | None] | None = None,
        close: Callable[[], Any] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        self._send = send
        self._batch_size = batch_size
        self._backfill = backfill
        self._close = close
        self._backoff = backoff or Backoff()
        self._sending = self._backfill is not None
        self._thread = threading.Thread(target=self._run, name="celery-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop sending; what is unsent stays pending in the database for the next start."""
        self._stop_thread(self._thread, timeout)
        if self._close is not None:
            self._close()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until everything is sent (the workers' progress is in /health)."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending and not self._sending, timeout)

    def _run(self) -> None:
        if self._backfill is not None:
            self._run_backfill(self._backfill)
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping or bool(self._order))
                if self._stopping:
                    return
                count = min(self._batch_size, len(self._order))
                batch = [self._order.popleft() for _ in range(count)]
                self._pending.difference_update(batch)
                self._sending = True
            try:
                self._send(batch)
                self._backoff.reset()
            except Exception as exc:
                delay = self._backoff.next_delay()
                logger.warning(
                    "could not queue images %s on the Celery broker (%s); kept, next try in %.1f s",
                    batch,
                    exc,
                    delay,
                )
                self._requeue_front(batch)
                self._sleep(delay)
            finally:
                with self._changed:
                    self._sending = False
                    self._changed.notify_all()

    def _run_backfill(self, find_pending: Callable[[], list[int] | None]) -> None:
        try:
            self._submit_unfinished(find_pending, self._backoff)
        finally:
            with self._changed:
                self._sending = False
                self._changed.notify_all()
