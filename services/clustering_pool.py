"""A small dedicated pool for clustering, with a bounded queue in front of it.

Clustering a large batch takes seconds and hundreds of MB. Run on request threads without a
bound, sixty concurrent analyses each held a database connection (the batch row locked) while
they waited for the CPU, and exhausted the connection pool: unrelated requests then failed
after the pool's 30 s timeout. Here at most `workers` clusterings run at once and `waiting`
more may queue; a request that cannot get a place within `wait_seconds` is told to come back
(503 with Retry-After), before it has read anything. The analysis service holds no database
connection while it waits or clusters (see services/analysis_service.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from config import get_settings
from services.errors import Unavailable

P = ParamSpec("P")
R = TypeVar("R")


class Busy(Unavailable):
    """Every clustering place is taken. `retry_after` (seconds) is for a Retry-After header;
    it is in the body too."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, extra={"retry_after": retry_after})
        self.retry_after = retry_after


class ClusteringPool:
    def __init__(
        self, workers: int, waiting: int, wait_seconds: float, retry_after: int = 5
    ) -> None:
        self.workers = workers
        self.wait_seconds = wait_seconds
        self.retry_after = retry_after
        self._places = threading.BoundedSemaphore(workers + waiting)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clustering")

    @contextmanager
    def place(self) -> Iterator[None]:
        """Hold one of the workers + waiting places for the length of an analysis, or raise
        Busy. Taken before the analysis reads its vectors, so at most that many batches'
        vectors are in memory at once."""
        if not self._places.acquire(timeout=self.wait_seconds):
            raise Busy(
                "The server is busy analysing other batches; try again shortly.",
                self.retry_after,
            )
        try:
            yield
        finally:
            self._places.release()

    def run(self, work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run `work` on a pool thread and wait for its result (its exception is re-raised)."""
        return self._executor.submit(work, *args, **kwargs).result()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_shared: ClusteringPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> ClusteringPool:
    """The process's pool, sized by ANALYSIS_WORKERS, ANALYSIS_QUEUE, ANALYSIS_WAIT_SECONDS."""
    global _shared
    with _shared_lock:
        if _shared is None:
            settings = get_settings()
            _shared = ClusteringPool(
                settings.analysis_workers,
                settings.analysis_queue,
                settings.analysis_wait_seconds,
            )
        return _shared
