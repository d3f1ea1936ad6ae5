"""The embedding model in a process of its own: the server sends decoded pixels, gets vectors.

Run in the server's process, every forward held the GIL in many short pieces, and the request
threads waited for it at each of their own hand-offs. Here the model shares only the CPU with
them. The process is spawned (a fresh interpreter, not a fork of a server with threads and
sockets), loads the model once (`ManagedEmbedder`: the configured model or the offline
fallback) and answers one batch at a time over a pipe.

A process that ends in the middle of a batch (killed, out of memory, crashed) is started again
and the batch is sent again: nothing is lost. If it ends on the same batch twice, the batch is
the likely cause: `InferenceCrashed`, and the caller tries its images one by one. If a new
process cannot be started or cannot load the model, `InferenceUnavailable` (an OSError, a
transient fault: the caller keeps the batch and tries again later).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from processing.embedding_spec import EmbedderSpec
from processing.feature_extraction import (
    Embedder,
    EmbedderLoadError,
    EmbedderStatus,
    ManagedEmbedder,
)
from processing.parent_watch import exit_with_parent

logger = logging.getLogger(__name__)

# How long a new process may take to import torch and load the model before it is given up.
START_TIMEOUT_SECONDS = 600.0
STOP_TIMEOUT_SECONDS = 10.0


class InferenceUnavailable(OSError):
    """No inference process could be started, or it could not load the model this time."""


class InferenceCrashed(RuntimeError):
    """The inference process ended twice in a row on the same batch."""


class EmbeddingFailed(RuntimeError):
    """The model raised on this batch (the message is the process's); the process lives on."""


@dataclass(frozen=True, slots=True)
class _Ready:
    """The process's first message: what it loaded (or why nothing loaded)."""

    status: EmbedderStatus
    input_size: int
    dim: int
    failure: str | None


def _serve(conn: Connection, spec: EmbedderSpec) -> None:
    """The inference process: load the model, then embed each batch the server sends."""
    exit_with_parent()
    managed = ManagedEmbedder(spec)
    active: Embedder | None = None
    failure: str | None = None
    try:
        active = managed.load()
    except Exception as exc:
        failure = str(exc)
    conn.send(
        _Ready(
            managed.status,
            active.input_size if active is not None else 0,
            active.dim if active is not None else 0,
            failure,
        )
    )
    while (arrays := conn.recv()) is not None:
        if active is None:
            conn.send(("error", failure or "no model loaded"))
            continue
        try:
            vectors = active.embed([Image.fromarray(pixels) for pixels in arrays])
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            conn.send(("ok", vectors))


class _Worker:
    """One running inference process and the server's end of its pipe."""

    def __init__(self, spec: EmbedderSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child, spec), name="inference", daemon=True
        )
        self.process.start()
        child.close()  # ours closed: the child's end dying shows as EOF here

    def ready(self, timeout: float) -> _Ready:
        try:
            if not self.conn.poll(timeout):
                raise InferenceUnavailable(f"the inference process did not load in {timeout} s")
            message = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise InferenceUnavailable(f"the inference process ended while loading: {exc}") from exc
        assert isinstance(message, _Ready)
        return message

    def embed(self, arrays: list[NDArray[np.uint8]]) -> tuple[str, Any]:
        """("ok", vectors) or ("error", message); EOFError or OSError if the process died."""
        self.conn.send(arrays)
        reply: tuple[str, Any] = self.conn.recv()
        return reply

    def stop(self, timeout: float) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass  # already gone
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self.conn.close()


class ProcessEmbedder:
    """The `Embedder` the pipeline sees: the loaded model's id and sizes, `embed` sent over."""

    def __init__(self, host: InferenceProcess, model_id: str, input_size: int, dim: int) -> None:
        self._host = host
        self.model_id = model_id
        self.input_size = input_size
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def load(self) -> None:
        pass

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32 L2-normalised rows, computed in the inference process."""
        if not images:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._host.embed([np.asarray(image.convert("RGB")) for image in images])


class InferenceProcess:
    """Hosts the model in a spawned process; the same `start_loading`/`load`/`status` as
    `ManagedEmbedder`, so the worker and the model's publication use either."""

    def __init__(self, spec: EmbedderSpec, start_timeout: float = START_TIMEOUT_SECONDS) -> None:
        self._spec = spec
        self._start_timeout = start_timeout
        self._lock = threading.Lock()  # one caller talks to the process at a time
        self._worker: _Worker | None = None
        self._loading: Future[Embedder] | None = None
        self._active: ProcessEmbedder | None = None
        self._status = EmbedderStatus(spec.model, None, None, loaded=False, device=spec.device)
        self._closed = False
        self.restarts = 0

    def start_loading(self) -> Future[Embedder]:
        """Start the process and its model load on a loader thread (once); the future of it."""
        with self._lock:
            if self._loading is None:
                self._loading = Future()
                threading.Thread(target=self._load_into, name="model-load", daemon=True).start()
            return self._loading

    def load(self, timeout: float | None = None) -> Embedder:
        """The process's embedder, waiting for the first load; EmbedderLoadError if no model
        loaded there (as `ManagedEmbedder.load`)."""
        if self._active is not None:
            return self._active
        return self.start_loading().result(timeout)

    @property
    def status(self) -> EmbedderStatus:
        return self._status

    @property
    def pid(self) -> int | None:
        worker = self._worker
        return worker.process.pid if worker is not None else None

    def _load_into(self) -> None:
        assert self._loading is not None
        try:
            with self._lock:
                ready = self._start()
            if ready.failure is not None:
                raise EmbedderLoadError(ready.failure)
        except BaseException as exc:
            self._loading.set_exception(exc)
            return
        assert ready.status.active_model is not None
        self._active = ProcessEmbedder(self, ready.status.active_model, ready.input_size, ready.dim)
        self._loading.set_result(self._active)

    def _start(self) -> _Ready:
        """A new process, its model loaded (under the lock)."""
        if self._closed:
            raise InferenceUnavailable("the inference process is shut down")
        try:
            worker = _Worker(self._spec)
        except OSError as exc:
            raise InferenceUnavailable(f"the inference process did not start: {exc}") from exc
        self._worker = worker
        try:
            ready = worker.ready(self._start_timeout)
        except InferenceUnavailable:
            worker.stop(STOP_TIMEOUT_SECONDS)
            self._worker = None
            raise
        self._status = ready.status
        logger.info("inference process %s loaded %s", worker.process.pid, ready.status.active_model)
        return ready

    def embed(self, arrays: list[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """Vectors for these RGB arrays; a process lost on the way is replaced and the batch
        sent again, once."""
        with self._lock:
            for attempt in range(2):
                worker = self._worker or self._restart()
                try:
                    kind, value = worker.embed(arrays)
                except (EOFError, OSError) as exc:
                    logger.warning(
                        "the inference process %s ended during a batch of %d (%s); starting "
                        "a new one%s",
                        worker.process.pid,
                        len(arrays),
                        type(exc).__name__,
                        ", sending the batch again" if attempt == 0 else "",
                    )
                    worker.stop(STOP_TIMEOUT_SECONDS)
                    self._worker = None
                    continue
                if kind == "error":
                    raise EmbeddingFailed(value)
                vectors: NDArray[np.float32] = value
                return vectors
            raise InferenceCrashed(
                f"the inference process ended twice on the same batch of {len(arrays)}"
            )

    def _restart(self) -> _Worker:
        ready = self._start()
        self.restarts += 1
        expected = self._active.model_id if self._active is not None else None
        if ready.status.active_model != expected:
            # Vectors are stamped with the first load's id; another model must not hide in it.
            assert self._worker is not None
            self._worker.stop(STOP_TIMEOUT_SECONDS)
            self._worker = None
            raise InferenceUnavailable(
                f"the restarted inference process loaded {ready.status.active_model}, "
                f"not {expected}"
            )
        assert self._worker is not None
        return self._worker

    def close(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop the process. Called once the worker stopped (no batch in hand); not under the
        lock, which a model load in progress holds for as long as it takes."""
        self._closed = True
        worker = self._worker
        if worker is not None:
            worker.stop(timeout)
