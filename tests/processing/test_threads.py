"""The thread policy: TORCH_THREADS wins; otherwise the model leaves a core to the rest, and
the decode stage has a thread per core (it takes the cores the model leaves idle)."""

from __future__ import annotations

import pytest

from processing.threads import thread_policy, usable_cores


@pytest.mark.parametrize(("cores", "model"), [(1, 1), (2, 1), (4, 3), (16, 15)])
def test_the_model_leaves_one_core_to_decoding_and_requests(cores: int, model: int) -> None:
    policy = thread_policy(None, cores)
    assert (policy.model, policy.decode, policy.cores) == (model, cores, cores)


def test_torch_threads_is_taken_as_it_is() -> None:
    assert thread_policy(2, cores=2).model == 2
    assert thread_policy(8, cores=2).model == 8


def test_the_cores_are_this_process_s() -> None:
    import os

    assert 1 <= usable_cores() <= (os.cpu_count() or 1)
    assert thread_policy(None).cores == usable_cores()
