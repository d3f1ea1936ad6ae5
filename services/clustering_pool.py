"""A small dedicated pool for analyses, with a bounded queue in front of it.

Clustering a large batch takes seconds and hundreds of MB. Run on request threads without a
bound, sixty concurrent analyses each held a database connection (the batch row locked) while
they waited for the CPU, and exhausted the connection pool: unrelated requests then failed
after the pool's 30 s timeout. Here at most `workers` analyses run at once and `waiting`
more may queue; a request that cannot get a place within `wait_seconds` is told to come back
(503 with Retry-After), before it has read anything.

The workers are processes by default (ANALYSIS_ISOLATION=process), and a whole analysis runs
there: the worker opens its own engine on the database URL (never a pickled connection), reads
the vectors, clusters, ranks, writes the labels and encodes the answer; the server only relays
the bytes. Run in the server's process, reading 50k rows, ranking them and encoding a 23 MB
answer held its GIL for seconds in all, and every request thread waited for it at each of its
own GIL hand-offs. The process is started (and its imports and code paths warmed) at start-up,
not on a user's first analysis; it exits with the server, also when the server is killed.

Priorities: the worker's main thread (database, ranking, the answer) runs at the server's
niceness, as that work did in the server before; only the clustering runs on a thread niced
to `niceness` (on Linux niceness is per thread), as the clustering process was before. With
ANALYSIS_ISOLATION=thread the same analysis runs on a thread of the server, on its sessions.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, ParamSpec, TypeVar

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from database.database import (
    create_db_engine,
    create_read_session_factory,
    create_session_factory,
)
from database.deadlines import DatabaseDeadlines
from processing.grouping import ImageGrouper
from processing.parent_watch import exit_with_parent
from services.errors import Unavailable

P = ParamSpec("P")
R = TypeVar("R")
J = TypeVar("J")
Isolation = Literal["process", "thread"]


class Busy(Unavailable):
    """Every analysis place is taken. `retry_after` (seconds) is for a Retry-After header;
    it is in the body too."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, extra={"retry_after": retry_after})
        self.retry_after = retry_after


class WorkerLost(Unavailable):
    """The analysis process ended in the middle of a task (killed, out of memory, crashed): a
    fault, not a defect (503). Its transaction died with it, so nothing it wrote is kept. The
    pool starts a new one for the next task."""


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """Where a worker process connects: the URL and the time bounds (plain values, pickled)."""

    url: str
    deadlines: DatabaseDeadlines | None = None


class WorkerDatabase:
    """What an analysis is run with: write and read sessions, and where clustering runs (in a
    worker process: a thread at the clustering's niceness)."""

    def __init__(
        self,
        write: sessionmaker[Session],
        read: sessionmaker[Session],
        clustering: ThreadPoolExecutor | None = None,
    ) -> None:
        self.write = write
        self.read = read
        self._clustering = clustering

    def cluster(self, work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """`work` on the clustering thread (here when there is none), its result or error."""
        if self._clustering is None:
            return work(*args, **kwargs)
        return self._clustering.submit(work, *args, **kwargs).result()


# The worker process's clustering thread and database (set by _start_worker).
_clustering: ThreadPoolExecutor | None = None
_worker_database: WorkerDatabase | None = None


def _warm_up() -> None:
    """Imports and first calls of both clustering paths (exact and kNN graph), so that the
    first real analysis does not pay for them."""
    rows = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    ImageGrouper(min_cluster_size=2, min_samples=1).fit_labels(rows)
    ImageGrouper(min_cluster_size=2, min_samples=1, large_batch_rows=10).fit_labels(rows)


def _start_worker(niceness: int, target: DatabaseTarget | None, preload: tuple[str, ...]) -> None:
    global _clustering, _worker_database
    exit_with_parent()
    for module in preload:  # what a task will unpickle (the answer's encoder), imported now
        importlib.import_module(module)
    # Below the server's request threads: on a small machine, the CPU they need comes first.
    # Only the clustering thread (and the threads it starts) is niced; os.nice applies to the
    # calling thread on Linux.
    _clustering = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="clustering", initializer=os.nice, initargs=(niceness,)
    )
    _clustering.submit(_warm_up).result()
    if target is not None:
        engine = create_db_engine(target.url, deadlines=target.deadlines)
        _worker_database = WorkerDatabase(
            create_session_factory(engine), create_read_session_factory(engine), _clustering
        )
        try:  # the first connection too, not on a user's first analysis
            with engine.connect():
                pass
        except SQLAlchemyError:  # the database is down: the first analysis will say so
            pass


def _on_worker_database(work: Callable[[WorkerDatabase, J], R], job: J) -> R:
    """`work(database, job)` with the worker process's own database (run in the worker)."""
    if _worker_database is None:
        raise RuntimeError("this analysis process was started without a database")
    return work(_worker_database, job)


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
        database: DatabaseTarget | None = None,
        sessions: WorkerDatabase | None = None,
        preload: tuple[str, ...] = (),
    ) -> None:
        """`database`: where worker processes connect; `sessions`: what an analysis on a
        thread of this process uses (isolation="thread"); `preload`: modules a worker process
        imports as it starts."""
        self.workers = workers
        self.wait_seconds = wait_seconds
        self.retry_after = retry_after
        self.isolation = isolation
        self.niceness = niceness
        self.database = database
        self.sessions = sessions
        self.preload = preload
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
            initargs=(self.niceness, self.database, self.preload),
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
        Busy. Taken before the analysis reads anything, so at most that many batches'
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
                "The analysis process ended unexpectedly (killed or out of memory); "
                "a new one is started: analyze again."
            ) from exc

    def run_with_database(self, work: Callable[[WorkerDatabase, J], R], job: J) -> R:
        """`run` of `work(database, job)`: in a worker process with that process's own
        database, on a thread with `sessions`."""
        if self.isolation == "thread":
            if self.sessions is None:
                raise RuntimeError("this pool was made without sessions for its threads")
            return self.run(work, self.sessions, job)
        return self.run(_on_worker_database, work, job)

    def shutdown(self) -> None:
        """Stop the workers: queued work is cancelled, running work finishes first."""
        with self._lock:
            executor = self._executor
        executor.shutdown(wait=True, cancel_futures=True)
