"""The clustering pool: bounded places, work on its own threads, errors carried back."""

from __future__ import annotations

import threading

import pytest

from services.clustering_pool import Busy, ClusteringPool
from services.errors import Unavailable


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
