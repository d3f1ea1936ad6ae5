"""The in-process background worker (TASK_BACKEND=inline): one thread fed by a queue of ids.

One thread means one image is never processed twice at the same time, and the model is
only ever run by one caller (torch already uses every core for one batch).

Work is never dropped for a fault that is not the image's: a batch that fails with a
transient error (database unreachable, storage full or away) goes back to the front of the
queue and is tried again after a backoff, until it succeeds. Stopping does not drain the
queue: the batch in hand is finished, the rest stays unfinished in the database and the next
start-up's backfill queues it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from services.background.pending import PendingIds
from services.background.retry import Backoff, is_transient

logger = logging.getLogger(__name__)

ProcessFn = Callable[[list[int]], object]
StartupFn = Callable[[], Iterable[int] | None]

# How long the worker waits for batch-mates once one id has arrived: an upload of many
# files enqueues them within milliseconds, and a full batch runs the model faster.
GATHER_SECONDS = 0.05


class ProcessingWorker(PendingIds):
    """Takes image ids, processes them in batches on a background thread."""

    def __init__(
        self,
        process: ProcessFn,
        batch_size: int,
        on_start: StartupFn | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        self._process = process
        self._batch_size = batch_size
        self._on_start = on_start
        self._backoff = backoff or Backoff()
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="processing-worker", daemon=True)

    def start(self) -> None:
        with self._changed:
            self._busy = self._on_start is not None
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand (not the queue) and end the thread."""
        self._stop_thread(self._thread, timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (for tests and benchmarks)."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        if self._on_start is not None:
            self._backfill(self._on_start)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._process(batch)
            except Exception as exc:
                if is_transient(exc):
                    self._retry_later(batch, exc)
                    continue
                # A bug, not an outage: the ids stay unfinished in the database, and the
                # next start-up's backfill queues them again.
                logger.exception("processing images %s failed", batch)
            else:
                self._backoff.reset()
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _backfill(self, find_pending: StartupFn) -> None:
        """Queue the unfinished work of earlier runs; waits out a database that is down."""
        try:
            self._submit_unfinished(find_pending, self._backoff)
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()

    def _retry_later(self, batch: list[int], exc: Exception) -> None:
        """Put the batch back at the front and wait before the next try."""
        delay = self._backoff.next_delay()
        logger.warning(
            "processing images %s failed (%s: %s); kept queued, next try in %.1f s",
            batch,
            type(exc).__name__,
            exc,
            delay,
        )
        self._requeue_front(batch)
        self._sleep(delay)

    def _next_batch(self) -> list[int] | None:
        with self._changed:
            self._changed.wait_for(lambda: self._stopping or bool(self._order))
            if self._stopping:
                return None
            deadline = time.monotonic() + GATHER_SECONDS
            while len(self._order) < self._batch_size and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            if self._stopping:
                return None
            batch = [self._order.popleft() for _ in range(min(self._batch_size, len(self._order)))]
            self._pending.difference_update(batch)
            self._busy = True
            return batch


class InlineWorker:
    """Processes submitted ids at once, in the caller's thread (tests that need determinism).
    `on_start` runs in `start()`, in the caller's thread too (the model's load and publication);
    there is no backfill."""

    def __init__(
        self, process: ProcessFn, batch_size: int, on_start: Callable[[], object] | None = None
    ) -> None:
        self._process = process
        self._batch_size = batch_size
        self._on_start = on_start

    def start(self) -> None:
        if self._on_start is None:
            return
        try:
            self._on_start()
        except Exception:
            # As the threaded worker's backfill: uploads are still handled without it.
            logger.exception("start-up work failed; new uploads are still handled")

    def stop(self, timeout: float = 30.0) -> None:
        pass

    def submit(self, image_ids: Iterable[int]) -> None:
        ids = list(image_ids)
        for start in range(0, len(ids), self._batch_size):
            self._process(ids[start : start + self._batch_size])

    @property
    def queued(self) -> int:
        return 0

    def wait_idle(self, timeout: float | None = None) -> bool:
        return True
