"""The inline worker's two stages: the next batch is decoded while the model embeds the one
before; a failure in either stage keeps the batch queued; stopping finishes what is in hand."""

from __future__ import annotations

import threading

from sqlalchemy.exc import OperationalError

from services.background.inline import ProcessingWorker
from services.background.retry import Backoff

WAIT = 20.0


def test_the_next_batch_is_prepared_while_the_model_works() -> None:
    """The model stage holds batch 1 until batch 2's decode has started: one thread doing
    both in turn could never get there (the wait times out, the test fails)."""
    second_prepared = threading.Event()
    overlapped: list[bool] = []
    finished: list[list[int]] = []

    def prepare(ids: list[int]) -> list[int]:
        if ids == [3, 4]:
            second_prepared.set()
        return ids

    def finish(ids: list[int]) -> None:
        if ids == [1, 2]:
            overlapped.append(second_prepared.wait(WAIT))
        finished.append(ids)

    worker = ProcessingWorker(prepare, batch_size=2, finish=finish)
    worker.start()
    try:
        worker.submit([1, 2, 3, 4])
        assert worker.wait_idle(timeout=WAIT * 2)
    finally:
        worker.stop()
    assert overlapped == [True]
    assert finished == [[1, 2], [3, 4]]


def test_a_transient_failure_of_the_model_stage_keeps_the_batch() -> None:
    faults = [OperationalError("UPDATE", {}, ConnectionError("server closed the connection"))]
    finished: list[list[int]] = []

    def finish(ids: list[int]) -> None:
        if ids == [1, 2] and faults:
            raise faults.pop(0)
        finished.append(ids)

    worker = ProcessingWorker(
        lambda ids: ids, batch_size=2, finish=finish, backoff=Backoff(first=0.01, cap=0.05)
    )
    worker.start()
    try:
        worker.submit([1, 2, 3, 4])
        assert worker.wait_idle(timeout=WAIT)
    finally:
        worker.stop()
    assert sorted(i for ids in finished for i in ids) == [1, 2, 3, 4]
    assert [1, 2] in finished
    assert worker.queued == 0


def test_a_bug_in_the_model_stage_does_not_stop_the_worker() -> None:
    finished: list[list[int]] = []

    def finish(ids: list[int]) -> None:
        if ids == [1]:
            raise ValueError("a bug")
        finished.append(ids)

    worker = ProcessingWorker(lambda ids: ids, batch_size=1, finish=finish)
    worker.start()
    try:
        worker.submit([1, 2, 3])
        assert worker.wait_idle(timeout=WAIT)
    finally:
        worker.stop()
    assert finished == [[2], [3]]


def test_stop_finishes_the_prepared_batch_and_leaves_the_queue() -> None:
    in_model = threading.Event()
    release = threading.Event()
    finished: list[list[int]] = []

    def finish(ids: list[int]) -> None:
        in_model.set()
        release.wait(WAIT)
        finished.append(ids)

    worker = ProcessingWorker(lambda ids: ids, batch_size=2, finish=finish)
    worker.start()
    worker.submit(range(10))
    assert in_model.wait(WAIT)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    release.set()
    stopper.join(WAIT * 2)
    assert not stopper.is_alive()
    # Every batch taken from the queue (the one in the model, the one waiting, the one being
    # prepared: at most three) is finished; every other id is still queued, none lost.
    done = [i for ids in finished for i in ids]
    assert done == list(range(len(done)))
    assert 2 <= len(done) <= 6
    assert worker.queued == 10 - len(done)
