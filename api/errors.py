"""The one place that turns exceptions into HTTP answers.

Domain errors carry their own status. Faults of a dependency (the database unreachable, its
pool exhausted, the disk full) are not bugs: they answer a JSON 503 with `Retry-After`, so a
client knows to come back. Validation errors keep FastAPI's list form, but never echo more than
a short excerpt of what was sent (a 10 MB body must not give a 10 MB reply) and never a value
JSON cannot carry (NaN, a lone surrogate) — rendering one would turn a 422 into a 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.errors import AppError, is_storage_fault
from services.lock_conflicts import conflict_error, is_lock_conflict
from utils.file_handling import StorageUnavailable

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# Longest excerpt of a client's value quoted back in a 422 (characters).
MAX_ECHO = 120


def unavailable(detail: str) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": detail},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def app_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status_code == 503 else None
    return JSONResponse(
        status_code=exc.status_code, content={"detail": exc.message, **exc.extra}, headers=headers
    )


async def database_fault_handler(request: Request, exc: Exception) -> JSONResponse:
    if is_lock_conflict(exc):  # lost a race with another write: not an outage
        logger.info("%s %s: lock conflict: %s", request.method, request.url.path, exc)
        return await app_error_handler(request, conflict_error())
    if isinstance(exc, PoolTimeout):  # the database answers; this process is out of connections
        logger.warning(
            "%s %s: no database connection free in time", request.method, request.url.path
        )
        return unavailable(
            "The server is busy (every database connection is in use); try again shortly."
        )
    logger.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    return unavailable("The database is unavailable; try again shortly.")


async def os_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if is_storage_fault(exc):
        logger.warning("%s %s: storage unavailable: %s", request.method, request.url.path, exc)
        why = exc if isinstance(exc, StorageUnavailable) else "disk full or failing"
        return unavailable(f"Storage is unavailable ({why}); try again shortly.")
    # Anything else is a defect: logged in full, answered as JSON all the same.
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "Internal server error."})


def _short_text(text: str) -> str:
    # backslashreplace: a lone surrogate becomes "\ud800", which JSON and UTF-8 can carry.
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= MAX_ECHO else safe[:MAX_ECHO] + "…"


def excerpt(value: Any) -> Any:
    """`value` itself when it is short and JSON can carry it; else a short text excerpt."""
    if isinstance(value, str):
        return _short_text(value)
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        text = json.dumps(value, default=str, ensure_ascii=True)
        return _short_text(text)
    return value if len(text) <= MAX_ECHO else _short_text(text)


def _plain(value: Any) -> Any:
    # ctx holds limits (numbers) and sometimes the exception a validator raised.
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _clean_error(error: dict[str, Any]) -> dict[str, Any]:
    cleaned = dict(error)
    if "input" in cleaned:
        cleaned["input"] = excerpt(cleaned["input"])
    # A dict key (a group label) is part of the location: it can be as long as the body.
    cleaned["loc"] = [
        _short_text(part) if isinstance(part, str) else part for part in error.get("loc", ())
    ]
    if "ctx" in cleaned:
        cleaned["ctx"] = {key: excerpt(_plain(v)) for key, v in cleaned["ctx"].items()}
    cleaned.pop("url", None)
    return cleaned


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_clean_error(error) for error in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    # FastAPI turns any failure while parsing a body into "400 error parsing the body"; when
    # it was the storage that uploads stream into (api/upload_spool.py) that failed or filled
    # up, that is a fault of ours, not the client's.
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, OSError) and is_storage_fault(cause):
        return await os_error_handler(request, cause)
    return await http_exception_handler(request, exc)


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for fault in (OperationalError, InterfaceError, DisconnectionError, PoolTimeout):
        app.add_exception_handler(fault, database_fault_handler)
    app.add_exception_handler(OSError, os_error_handler)
