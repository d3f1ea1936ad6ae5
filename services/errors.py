"""Domain errors. Services raise these; one exception handler maps them to HTTP."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code = 400
    # An error that records its own failure (e.g. a batch marked "failed") asks the request's
    # transaction to commit instead of rolling back.
    keeps_changes = False

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class InvalidInput(AppError):
    status_code = 400


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class PayloadTooLarge(AppError):
    status_code = 413


class UnsupportedMediaType(AppError):
    status_code = 415


class Unavailable(AppError):
    status_code = 503
