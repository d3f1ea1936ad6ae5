"""A small dedicated pool for clustering, with a bounded queue in front of it.

Clustering a large batch takes seconds and hundreds of MB. Run on request threads without a
bound, sixty concurrent analyses each held a database connection (the batch row locked) while
they waited for the CPU, and exhausted the connection pool: unrelated requests then failed
after the pool's 30 s timeout. Here at most `workers` clusterings run at once and `waiting`
more may queue; a request that cannot get a place within `wait_seconds` is told to come back
(503 with Retry-After), before it has read anything. The analysis service holds no database
connection while it waits or clusters (see services/analysis_service.py).

The workers are processes by default (ANALYSIS_ISOLATION=process). On threads of the server's
own process, the clustering of 50k rows held the GIL for seconds in all, in many short pieces,
and every request thread waited for it at each of its own GIL hand-offs: `GET /images/` p99
went from ~30 ms to ~300-500 ms while it ran (bench/analyze_scale.py --http). In a process of
its own the clustering shares only the CPU. The process is started (and its imports and code
paths warmed) at start-up, not on a user's first analysis; it exits with the server, also when
the server is killed.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from typing import Literal, ParamSpec, TypeVar

import numpy as np
from numpy.typing import NDArray

from processing.grouping import Capture, GroupingResult, ImageGrouper
from processing.parent_watch import exit_with_parent
from services.errors import Unavailable

P = ParamSpec("P")
R = TypeVar("R")
Isolation = Literal["process", "thread"]


class Busy(Unavailable):
    """Every clustering place is taken. `retry_after` (seconds) is for a Retry-After header;
    it is in the body too."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, extra={"retry_after": retry_after})
        self.retry_after = retry_after


class WorkerLost(RuntimeError):
    """The clustering process ended in the middle of a task (killed, out of memory, crashed).
    The pool starts a new one for the next task."""


def _warm_up() -> None:
    """Imports and first calls of both clustering paths (exact and kNN graph), so that the
    first real analysis does not pay for them."""
    rows = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    ImageGrouper(min_cluster_size=2, min_samples=1).fit_labels(rows)
    ImageGrouper(min_cluster_size=2, min_samples=1, large_batch_rows=10).fit_labels(rows)


def _start_worker(niceness: int) -> None:
    # Below the server's request threads: on a small machine, the CPU they need comes first.
    os.nice(niceness)
    exit_with_parent()
    _warm_up()


@dataclass(frozen=True, slots=True)
class SharedRows:
    """A float32 matrix in shared memory, by name: what a worker process is handed instead of
    the rows themselves. Pickling 50k x 384 rows into the pipe held the server's GIL for
    ~0.3 s in one call; the server fills this matrix row by row instead."""

    name: str
    shape: tuple[int, int]

    @classmethod
    @contextmanager
    def create(cls, rows: Sequence[bytes]) -> Iterator[SharedRows]:
        """The rows (each the bytes of a float32 vector, all one length) in a new shared
        matrix, removed on exit."""
        width = len(rows[0]) // 4 if rows else 0
        if any(len(row) != width * 4 for row in rows):
            raise ValueError("the vectors do not all have the same length")
        memory = SharedMemory(create=True, size=max(1, len(rows) * width * 4))
        try:
            matrix = np.ndarray((len(rows), width), dtype=np.float32, buffer=memory.buf)
            for at, row in enumerate(rows):  # short steps: other threads get the GIL between
                matrix[at] = np.frombuffer(row, dtype=np.float32)
            del matrix  # no view may outlive the memory
            yield cls(memory.name, (len(rows), width))
        finally:
            memory.close()
            memory.unlink()

    def copy(self) -> NDArray[np.float32]:
        """The matrix, copied out of the shared memory (in whichever process asks)."""
        memory = SharedMemory(name=self.name)
        try:
            view = np.ndarray(self.shape, dtype=np.float32, buffer=memory.buf)
            matrix = view.copy()
            del view
            return matrix
        finally:
            memory.close()


def fit_shared_labels(
    grouper: ImageGrouper,
    rows: SharedRows,
    captures: Sequence[Capture] | None = None,
    time_gap_seconds: float | None = None,
) -> GroupingResult:
    """`grouper.fit_labels` of the shared rows (run on a worker)."""
    return grouper.fit_labels(rows.copy(), captures, time_gap_seconds)


class ClusteringPool:
    def __init__(
        self,
        workers: int,
        waiting: int,
        wait_seconds: float,
        retry_after: int = 5,
        *,
        isolation: Isolation = "thread",
        niceness: int = 0,
    ) -> None:
        self.workers = workers
        self.wait_seconds = wait_seconds
        self.retry_after = retry_after
        self.isolation = isolation
        self.niceness = niceness
        self._places = threading.BoundedSemaphore(workers + waiting)
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if self.isolation == "thread":
            return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="clustering")
        # spawn: a fresh interpreter, not a fork of a server with threads, sockets and a model.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.niceness,),
        )

    def start(self) -> None:
        """Start the workers in the background (a process imports and warms up in ~1-3 s);
        nothing waits for it."""
        with self._lock:
            executor = self._executor
        if isinstance(executor, ProcessPoolExecutor):
            for _ in range(self.workers):
                executor.submit(os.getpid)

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
        """Run `work` on a worker and wait for its result (its exception is re-raised). With
        processes, `work` and its arguments must pickle (a module-level function, a bound
        method of a plain object). WorkerLost if the worker process ended meanwhile."""
        with self._lock:
            executor = self._executor
        try:
            return executor.submit(work, *args, **kwargs).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._executor is executor:
                    self._executor = self._new_executor()
            executor.shutdown(wait=False, cancel_futures=True)
            raise WorkerLost(
                "The clustering process ended unexpectedly (killed or out of memory); "
                "a new one is started: analyze again."
            ) from exc

    def shutdown(self) -> None:
        """Stop the workers: queued work is cancelled, running work finishes first."""
        with self._lock:
            executor = self._executor
        executor.shutdown(wait=True, cancel_futures=True)
