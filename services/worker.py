"""The in-process background worker: one thread fed by a queue of image ids.

One thread means one image is never processed twice at the same time, and the model is
only ever run by one caller (torch already uses every core for one batch).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)

ProcessFn = Callable[[list[int]], object]
StartupFn = Callable[[], Iterable[int]]

# How long the worker waits for batch-mates once one id has arrived: an upload of many
# files enqueues them within milliseconds, and a full batch runs the model faster.
GATHER_SECONDS = 0.05


class ProcessingWorker:
    """Takes image ids, processes them in batches on a background thread."""

    def __init__(
        self, process: ProcessFn, batch_size: int, on_start: StartupFn | None = None
    ) -> None:
        self._process = process
        self._batch_size = batch_size
        self._on_start = on_start
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = False
        self._started = False
        self._thread = threading.Thread(target=self._run, name="processing-worker", daemon=True)

    def start(self) -> None:
        with self._lock:
            self._busy = self._on_start is not None
            self._started = True
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def submit(self, image_ids: Iterable[int]) -> None:
        """Queue ids; an id already waiting is not queued twice."""
        with self._lock:
            for image_id in image_ids:
                if image_id not in self._pending:
                    self._pending.add(image_id)
                    self._queue.put(image_id)

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (for tests and benchmarks)."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        if self._on_start is not None:
            try:
                self.submit(self._on_start())
            except Exception:
                logger.exception("start-up backfill failed; new uploads are still processed")
            with self._idle:
                self._busy = False
                self._idle.notify_all()
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._process(batch)
            except Exception:
                # A database outage or a bug must not kill the worker: the ids stay missing
                # in the database, so the next start-up backfill picks them up again.
                logger.exception("processing images %s failed", batch)
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()

    def _next_batch(self) -> list[int] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self._batch_size:
            try:
                item = self._queue.get(timeout=GATHER_SECONDS)
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        with self._lock:
            self._pending.difference_update(batch)
            self._busy = True
        return batch


class InlineWorker:
    """Processes submitted ids at once, in the caller's thread (tests that need determinism)."""

    def __init__(self, process: ProcessFn, batch_size: int) -> None:
        self._process = process
        self._batch_size = batch_size

    def start(self) -> None:
        pass

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
