"""The in-process background worker (TASK_BACKEND=inline): two stages fed by a queue of ids.

The decode stage (one thread: decode, thumbnail, quality) prepares the next batch while the
model stage (one thread) embeds and stores the one before (the forward itself runs in the
model's own process by default, processing/model_process.py), so the time per image approaches
the slower of the two, not their sum. Between them waits at most one prepared batch. An id is
in one batch at a time, so one image is never processed twice at the same time, and the model
is only ever run by one caller.

Work is never dropped for a fault that is not the image's: a batch that fails with a
transient error (database unreachable, storage full or away) goes back to the front of the
queue and is tried again after a backoff, until it succeeds. Stopping does not drain the
queue: the batch in hand is finished, the rest stays unfinished in the database and the next
start-up's backfill queues it again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from services.background.pending import PendingIds
from services.background.retry import Backoff, is_transient

logger = logging.getLogger(__name__)

ProcessFn = Callable[[list[int]], Any]
FinishFn = Callable[[Any], object]
StartupFn = Callable[[], Iterable[int] | None]

# How long the worker waits for batch-mates once one id has arrived: an upload of many
# files enqueues them within milliseconds, and a full batch runs the model faster.
GATHER_SECONDS = 0.05


class ProcessingWorker(PendingIds):
    """Takes image ids, processes them in batches on background threads.

    `process(ids)` runs on the decode stage's thread; with `finish`, what it returns is
    handed to `finish` on the model stage's thread (without, `process` is the whole work).
    A transient failure in either stage puts the batch back at the front of the queue."""

    def __init__(
        self,
        process: ProcessFn,
        batch_size: int,
        on_start: StartupFn | None = None,
        backoff: Backoff | None = None,
        finish: FinishFn | None = None,
        on_stop: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        self._on_stop = on_stop
        self._process = process
        self._finish = finish
        self._batch_size = batch_size
        self._on_start = on_start
        self._backoff = backoff or Backoff()
        self._busy = False  # the start-up backfill runs
        self._in_flight = 0  # batches taken from the queue and not yet done
        self._in_flight_ids = 0  # the ids in them
        # One prepared batch waits while the model stage works on another; None: no more.
        self._handover: queue.Queue[tuple[list[int], Any] | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="processing-worker", daemon=True)
        self._model_thread = threading.Thread(
            target=self._run_model_stage, name="processing-model", daemon=True
        )

    def start(self) -> None:
        with self._changed:
            self._busy = self._on_start is not None
        self._thread.start()
        if self._finish is not None:
            self._model_thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batches in hand (not the queue) and end the threads."""
        deadline = time.monotonic() + timeout
        self._stop_thread(self._thread, timeout)
        if self._model_thread.is_alive():
            self._model_thread.join(max(0.0, deadline - time.monotonic()))
        if self._on_stop is not None:
            self._on_stop()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (for tests and benchmarks)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not self._pending and not self._busy and not self._in_flight, timeout
            )

    def _run(self) -> None:
        try:
            if self._on_start is not None:
                self._backfill(self._on_start)
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                try:
                    prepared = self._process(batch)
                except Exception as exc:
                    self._failed(batch, exc)
                    self._done(batch)
                    continue
                if self._finish is None:
                    self._backoff.reset()
                    self._done(batch)
                else:
                    self._handover.put((batch, prepared))
        finally:
            if self._finish is not None:
                self._handover.put(None)

    def _run_model_stage(self) -> None:
        assert self._finish is not None
        while (item := self._handover.get()) is not None:
            batch, prepared = item
            try:
                self._finish(prepared)
            except Exception as exc:
                self._failed(batch, exc)
            else:
                self._backoff.reset()
            finally:
                self._done(batch)

    def _failed(self, batch: list[int], exc: Exception) -> None:
        if is_transient(exc):
            self._retry_later(batch, exc)
            return
        # A bug, not an outage: the ids stay unfinished in the database, and the next
        # start-up's backfill queues them again.
        logger.error("processing images %s failed", batch, exc_info=exc)

    def _done(self, batch: list[int]) -> None:
        with self._changed:
            self._in_flight -= 1
            self._in_flight_ids -= len(batch)
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
            self._in_flight += 1
            self._in_flight_ids += len(batch)
            return batch

    @property
    def queued(self) -> int:
        """Ids not handled yet: waiting, and in batches being prepared or embedded (a batch of
        images deleted meanwhile still has its results to store, and its thumbnails to remove)."""
        with self._changed:
            return len(self._pending) + self._in_flight_ids


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
