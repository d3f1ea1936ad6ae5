"""Domain errors. Services raise these; one exception handler maps them to HTTP."""

from __future__ import annotations

import errno
from typing import Any

from utils.file_handling import StorageUnavailable

# OSErrors that say the storage is full or failing, not that the input or our code is wrong:
# faults, answered with 503 (see api/errors.py).
STORAGE_FAULTS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EMFILE, errno.ENFILE, errno.ENOMEM}
)


def is_storage_fault(exc: BaseException) -> bool:
    return isinstance(exc, StorageUnavailable) or (
        isinstance(exc, OSError) and exc.errno in STORAGE_FAULTS
    )


class AppError(Exception):
    status_code = 400
    # An error that records its own failure (e.g. a batch marked "failed") asks the request's
    # transaction to commit instead of rolling back.
    keeps_changes = False

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled whole (an analysis raises these in its worker process): its class, message,
        # extra fields and any a subclass adds, whatever the subclass's constructor takes.
        return _restored, (type(self), self.args, self.__dict__)


def _restored(kind: type[AppError], args: tuple[Any, ...], state: dict[str, Any]) -> AppError:
    error = kind.__new__(kind)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InvalidInput(AppError):
    status_code = 400


class Forbidden(AppError):
    status_code = 403


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
