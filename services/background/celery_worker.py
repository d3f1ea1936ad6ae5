"""Run a Celery worker for the image processing (TASK_BACKEND=celery):

    python -m services.background.celery_worker [worker options, e.g. --concurrency=2 -n w2@%h]

It reads the same settings as the API (environment or `.env`): CELERY_BROKER_URL,
DATABASE_URL, STORAGE_ROOT (the same files the API sees), EMBEDDING_MODEL, EMBEDDING_DEVICE,
TORCH_THREADS. One process by default, using TORCH_THREADS threads (torch's default: every
core); with --concurrency=N set TORCH_THREADS to about cores / N. `celery -A
services.background.celery_worker worker` works too.

(`services.background.inline` is the API's own in-process thread worker, for TASK_BACKEND=inline.)
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from celery import Celery

from config import Settings, get_settings
from processing.decode_gate import configure_decode_gate
from services.background.celery_app import connect_worker_signals, create_celery_app

# Later options win, so these are only defaults.
DEFAULT_ARGS = ["worker", "--loglevel=INFO", "--concurrency=1"]


def create_worker_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    if not settings.celery_broker_url:
        raise SystemExit("A Celery worker needs CELERY_BROKER_URL (and TASK_BACKEND=celery).")
    app = create_celery_app(settings)
    configure_decode_gate(
        settings.decode_concurrency, settings.decode_memory_mb, settings.decode_wait_seconds
    )
    connect_worker_signals()
    return app


@functools.cache
def _default_app() -> Celery:
    return create_worker_app()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    _default_app().worker_main([*DEFAULT_ARGS, *args])


def __getattr__(name: str) -> Any:
    # `celery -A services.background.celery_worker` reads `app`; built on first access.
    if name == "app":
        return _default_app()
    raise AttributeError(name)


if __name__ == "__main__":
    main()
