"""How the process shares its cores: model threads, decode threads, request threads.

Chosen once, at start-up, from the cores this process may run on and `TORCH_THREADS`:

- **decode**: one thread per usable core, the worker's decode stage (decode, thumbnail,
  quality of the next batch while the model runs), a batch's images spread over them; uploads
  are decoded on the request threads. One decode thread left a core idle whenever the model
  waited for the next batch (on 2 cores the decode side is the slower one for the offline
  encoder): with one per core, the decode side takes both cores while the model waits and
  shares them while it runs (README "Threads", the measured A/B).
- **model**: `TORCH_THREADS` when set, else every usable core but one (at least 1). torch's
  own default takes every core; its threads meet at a barrier after each operation, so one
  thread that loses its core to a decode, a request or another process stalls them all: the
  same offline-encoder forward swung from 29 to 117 ms when request threads decoded uploads.
  Leaving one core to the decode stage and requests keeps the forward's time steady under
  load (`python -m bench.forward_under_load`, README "Threads").
- **requests**: FastAPI's thread pool, unchanged; their work (parsing, hashing, the check
  decode, database calls) mostly runs while the GIL is released.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThreadPolicy:
    cores: int
    model: int
    decode: int


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def thread_policy(torch_threads: int | None, cores: int | None = None) -> ThreadPolicy:
    """The threads of each kind for a machine of `cores` (default: this process's)."""
    cores = cores if cores is not None else usable_cores()
    model = torch_threads if torch_threads is not None else max(1, cores - 1)
    return ThreadPolicy(cores=cores, model=model, decode=cores)
