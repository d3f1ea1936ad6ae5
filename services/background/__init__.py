"""Background work: everything that happens to an image after its upload committed.

- `queue`: the interface both backends implement, and `enqueue_processing`, the one call
  services make (the ids are handed over when their transaction commits).
- `pipeline`: thumbnail, quality and embedding from one decode of each file.
- `inline`: TASK_BACKEND=inline, threads of the API process; the model runs in a process of
  its own (processing.model_process, EMBEDDING_ISOLATION=process).
- `celery_app`, `celery_worker`: TASK_BACKEND=celery, worker processes
  (`python -m services.background.celery_worker`).
- `retry`: which failures are waited out (database, storage) and the backoff.
- `startup`: storage repair and the backfill of unfinished work at start-up.
- `wiring`: picks the backend from the settings.
"""

from services.background.queue import enqueue_processing

__all__ = ["enqueue_processing"]
