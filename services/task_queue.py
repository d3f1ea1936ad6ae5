"""Where image processing is sent: the small interface both task backends implement.

`TASK_BACKEND=inline` (the default): `services.worker.ProcessingWorker`, a thread of the API
process. `TASK_BACKEND=celery`: `CeleryTaskQueue` below sends the ids to Celery workers
(`python -m services.celery_worker`), and the API process runs no model at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image

from config import Settings
from processing.feature_extraction import (
    Embedder,
    EmbedderLoadError,
    EmbedderStatus,
    ManagedEmbedder,
    expected_model_id,
)

logger = logging.getLogger(__name__)


class TaskQueue(Protocol):
    """Queue these image ids for thumbnail, quality and embedding."""

    def start(self) -> None: ...
    def stop(self, timeout: float = 30.0) -> None: ...
    def submit(self, image_ids: Iterable[int]) -> None: ...

    @property
    def queued(self) -> int:
        """Ids this process holds that no worker has been handed yet."""
        ...

    def wait_idle(self, timeout: float | None = None) -> bool: ...


def loaded_embedder(embedder: ManagedEmbedder) -> Embedder | None:
    """The active embedder, or None (thumbnails still get made) if no model can load."""
    try:
        return embedder.load()
    except Exception:
        return None


class CeleryTaskQueue:
    """Sends ids to Celery, EMBEDDING_BATCH_SIZE ids per task (one task embeds one batch).

    Nothing is counted here once sent: progress comes from the database (`/health`'s pending
    counts). `queued` is only what the start-up backfill has not sent yet."""

    def __init__(
        self,
        send: Callable[[list[int]], Any],
        batch_size: int,
        backfill: Callable[[], list[int]] | None = None,
        close: Callable[[], Any] | None = None,
    ) -> None:
        self._send = send
        self._batch_size = batch_size
        self._backfill = backfill
        self._close = close
        self._unsent = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run_backfill, name="celery-backfill")

    def start(self) -> None:
        # On a thread: a large backlog must not delay serving requests.
        if self._backfill is not None:
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._close is not None:
            self._close()

    def submit(self, image_ids: Iterable[int]) -> None:
        """Send the ids in batches. A broker that cannot be reached is logged, not raised:
        the images stay pending in the database and the next start-up sends them again."""
        self._send_batches(list(image_ids), counted=False)

    @property
    def queued(self) -> int:
        with self._lock:
            return self._unsent

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the start-up backfill is sent (the workers' progress is in /health)."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _send_batches(self, ids: list[int], *, counted: bool) -> None:
        for start in range(0, len(ids), self._batch_size):
            batch = ids[start : start + self._batch_size]
            try:
                self._send(batch)
            except Exception:
                logger.exception("could not queue images %s on the Celery broker", batch)
            if counted:
                with self._lock:
                    self._unsent -= len(batch)

    def _run_backfill(self) -> None:
        assert self._backfill is not None
        try:
            pending = self._backfill()
            with self._lock:
                self._unsent = len(pending)
            self._send_batches(pending, counted=True)
        except Exception:
            logger.exception("start-up backfill failed; new uploads are still queued")
        finally:
            with self._lock:
                self._unsent = 0


class RemoteEmbedder(ManagedEmbedder):
    """The API's view of the model when Celery workers embed (TASK_BACKEND=celery).

    Every worker embeds with the configured EMBEDDING_MODEL and never falls back to another
    model (see services.celery_app), so the id the vectors carry is known here without
    loading anything: analysis, similarity and /health use it. Loading is refused, so the
    API process cannot run the model by mistake."""

    def __init__(self, settings: Settings) -> None:  # no super(): it would pick a device
        self._model_id = expected_model_id(settings)
        self._configured_device = settings.embedding_device

    def load(self, timeout: float | None = None) -> Embedder:
        raise EmbedderLoadError(
            "with TASK_BACKEND=celery the model runs on the Celery workers, not in the API"
        )

    @property
    def status(self) -> EmbedderStatus:
        return EmbedderStatus(
            configured_model=self._model_id,
            active_model=self._model_id,
            fallback_reason=None,
            loaded=False,
            device=f"celery workers ({self._configured_device})",
        )

    @property
    def model_id(self) -> str:
        return self._model_id

    def ready_model_id(self, timeout: float) -> str:
        return self._model_id

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise EmbedderLoadError("with TASK_BACKEND=celery the Celery workers embed images")
