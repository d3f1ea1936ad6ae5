"""The clustering pool: bounded places, work on its own threads or processes, errors carried
back, a lost worker process replaced."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from processing.grouping import Capture, ImageGrouper
from services.clustering_pool import Busy, ClusteringPool, WorkerLost
from services.errors import Unavailable

pytestmark = pytest.mark.slow  # left out of `make test-quick`


def test_a_full_pool_answers_busy_with_a_retry_after() -> None:
    pool = ClusteringPool(workers=1, waiting=1, wait_seconds=0.0, retry_after=7)
    release = threading.Event()
    inside = threading.Barrier(3)

    def hold() -> None:
        with pool.place():
            inside.wait()
            release.wait()

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    inside.wait()  # both places are taken

    with pytest.raises(Busy) as caught, pool.place():
        pass
    release.set()
    for thread in holders:
        thread.join()

    assert isinstance(caught.value, Unavailable)
    assert caught.value.status_code == 503
    assert caught.value.retry_after == 7
    assert caught.value.extra == {"retry_after": 7}
    with pool.place():  # the places are free again
        pass
    pool.shutdown()


def test_work_runs_on_the_pool_threads_and_errors_come_back() -> None:
    pool = ClusteringPool(workers=1, waiting=0, wait_seconds=1.0)

    name = pool.run(lambda: threading.current_thread().name)

    assert name.startswith("clustering")
    assert name != threading.current_thread().name
    with pytest.raises(ValueError, match="broken"):
        pool.run(lambda: (_ for _ in ()).throw(ValueError("broken")))
    pool.shutdown()


@pytest.fixture(scope="module")
def process_pool() -> Iterator[ClusteringPool]:
    pool = ClusteringPool(workers=1, waiting=0, wait_seconds=1.0, isolation="process")
    yield pool
    pool.shutdown()


def bursts(count: int = 60, dims: int = 16) -> tuple[NDArray[np.float32], list[Capture]]:
    """Bursts of near-identical rows, a second apart within a burst, a minute between them."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(count // 6, dims))
    rows = centres[np.arange(count) // 6] + 0.05 * rng.normal(size=(count, dims))
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    captures = [
        Capture(start + timedelta(seconds=60 * (i // 6) + i % 6), "cam") for i in range(count)
    ]
    return rows.astype(np.float32), captures


def test_a_worker_process_gives_the_labels_of_the_server_process(
    process_pool: ClusteringPool,
) -> None:
    rows, captures = bursts()
    grouper = ImageGrouper(min_cluster_size=2, min_samples=1)
    here = grouper.fit_labels(rows, captures, 10.0)

    there = process_pool.run(grouper.fit_labels, rows, captures, 10.0)

    assert there == here
    assert here.n_groups == 10
    assert process_pool.run(os.getpid) != os.getpid()


def thread_niceness() -> dict[str, int]:
    """In a worker process: the niceness of its main thread and of its clustering thread, as
    the kernel has them (/proc/self/task/<tid>/stat, field 19)."""
    found = {}
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.name.startswith("clustering"):
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
            name = "main" if thread is threading.main_thread() else "clustering"
            found[name] = int(stat.rsplit(")", 1)[1].split()[16])
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread niceness: Linux")
def test_only_the_clustering_thread_of_a_worker_process_is_niced() -> None:
    """The analysis reads, ranks and encodes at the server's niceness; only the clustering
    yields the CPU (ANALYSIS_NICENESS), as when it was the only work of the process."""
    pool = ClusteringPool(workers=1, waiting=0, wait_seconds=1.0, isolation="process", niceness=7)
    try:
        niceness = pool.run(thread_niceness)
    finally:
        pool.shutdown()

    ours = os.nice(0)
    assert niceness == {"main": ours, "clustering": min(19, ours + 7)}


def test_a_killed_worker_is_a_clear_error_and_the_next_task_gets_a_new_one(
    process_pool: ClusteringPool,
) -> None:
    pid = process_pool.run(os.getpid)

    with pytest.raises(WorkerLost, match="ended unexpectedly"):
        process_pool.run(os.kill, pid, signal.SIGKILL)

    assert process_pool.run(os.getpid) not in (pid, os.getpid())


def test_a_full_process_pool_answers_busy() -> None:
    pool = ClusteringPool(workers=1, waiting=0, wait_seconds=0.0, isolation="process")
    try:
        with pool.place(), pytest.raises(Busy), pool.place():
            pass
    finally:
        pool.shutdown()
