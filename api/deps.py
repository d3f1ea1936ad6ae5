"""Dependencies, declared once: the session that owns the request's transaction, settings,
the worker and the embedder."""

from __future__ import annotations

import functools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, ParamSpec, TypeVar

from anyio import CapacityLimiter, to_thread
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.schemas import Presenter
from config import Settings
from processing.feature_extraction import ManagedEmbedder
from services.background.queue import TaskQueue
from services.errors import AppError
from services.similarity_service import EmbeddingIndex

P = ParamSpec("P")
R = TypeVar("R")


class Unauthorized(AppError):
    status_code = 401


def in_threadpool(route: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run a blocking route body on the thread pool, as FastAPI does for `def` routes, but
    present it to FastAPI as `async` so that the response is then validated on the event loop.

    FastAPI validates a `def` route's response on the same thread pool. A request that holds
    a database lock (SQLite's writer lock) could then wait for a thread while every thread is
    held by a request waiting for that lock: a deadlock until the lock times out. Here a
    route's thread is released before anything else is needed, and the transaction is
    finished on its own limiter (see get_session)."""

    @functools.wraps(route)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return await to_thread.run_sync(functools.partial(route, *args, **kwargs))

    return run


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: committed when the handler succeeds, else rolled back.

    Commit, rollback and close run on their own small thread limiter, not the shared one the
    sync handlers use: when every shared thread holds a request waiting for a database lock,
    the request that owns the lock must still be able to commit (SQLite would otherwise sit
    in that deadlock until its busy timeout)."""
    session: Session = request.app.state.session_factory()
    limiter: CapacityLimiter = request.app.state.transaction_limiter
    try:
        yield session
        await to_thread.run_sync(session.commit, limiter=limiter)
    except AppError as exc:
        finish = session.commit if exc.keeps_changes else session.rollback
        await to_thread.run_sync(finish, limiter=limiter)
        raise
    except BaseException:
        await to_thread.run_sync(session.rollback, limiter=limiter)
        raise
    finally:
        await to_thread.run_sync(session.close, limiter=limiter)


async def get_worker(request: Request) -> TaskQueue:
    worker: TaskQueue = request.app.state.worker
    return worker


async def get_embedder(request: Request) -> ManagedEmbedder:
    embedder: ManagedEmbedder = request.app.state.embedder
    return embedder


async def get_embedding_index(request: Request) -> EmbeddingIndex:
    index: EmbeddingIndex = request.app.state.embedding_index
    return index


async def get_presenter(request: Request) -> Presenter:
    return Presenter(active_model=(await get_embedder(request)).status.active_model)


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": the commit happens before the response is sent, so a client never
# hears "stored" for a transaction that then fails, and background work sees the rows.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WorkerDep = Annotated[TaskQueue, Depends(get_worker)]
EmbedderDep = Annotated[ManagedEmbedder, Depends(get_embedder)]
PresenterDep = Annotated[Presenter, Depends(get_presenter)]
IndexDep = Annotated[EmbeddingIndex, Depends(get_embedding_index)]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


async def require_api_key(
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> None:
    """When API_KEY is set, the request must carry it (X-API-Key or Authorization: Bearer)."""
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    offered = api_key if api_key is not None else (bearer.credentials if bearer else None)
    if offered is None or not secrets.compare_digest(offered.encode(), expected):
        raise Unauthorized("Missing or wrong API key: send it as X-API-Key or a Bearer token.")
