"""Dependencies, declared once: the session that owns the request's transaction, settings,
the worker, and how responses are presented."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.schemas import Presenter
from config import Settings
from database.deadlines import DATABASE_LOST, DatabaseBreaker, database_breaker, lost_connection
from services.background.queue import TaskQueue
from services.clustering_pool import ClusteringPool
from services.errors import AppError, Unavailable
from services.model_identity import published_model_id
from services.similarity_service import EmbeddingIndex


class Unauthorized(AppError):
    status_code = 401


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A write transaction per request: committed when the handler succeeds, else rolled back.

    A plain generator: FastAPI enters it on its thread pool and finishes it on a thread of its
    own (never waiting for pool capacity), so a request holding SQLite's write lock can always
    commit. Routes that write return a finished `Response` (built in the route's thread), so
    nothing between the first write and the commit waits for a pool thread either."""
    breaker = _admitted()
    session: Session = request.app.state.session_factory()
    failed = False
    try:
        yield session
        session.commit()
    except AppError as exc:
        if exc.keeps_changes:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException as exc:
        failed = lost_connection(exc)
        session.rollback()
        raise
    finally:
        session.close()
        breaker.settle(failed)


def get_read_session(request: Request) -> Iterator[Session]:
    """A read-only transaction (deferred BEGIN on SQLite, READ ONLY on PostgreSQL): it never
    takes the write lock; closing it rolls back, there being nothing to commit."""
    yield from _read_session(request, _admitted())


def get_health_session(request: Request) -> Iterator[Session]:
    """Like `get_read_session`, but it tries the database even while the breaker refuses other
    requests: `/health` is the probe that reports what is down, and its success closes the
    breaker again (its wait is still bounded by the database deadlines)."""
    yield from _read_session(request, database_breaker())


def _read_session(request: Request, breaker: DatabaseBreaker) -> Iterator[Session]:
    session: Session = request.app.state.read_session_factory()
    failed = False
    try:
        yield session
    except BaseException as exc:
        failed = lost_connection(exc)
        raise
    finally:
        # a probe that caught its own fault (`/health`) says so in the session's info
        failed = failed or bool(session.info.get(DATABASE_LOST, False))
        session.close()
        breaker.settle(failed)


def _admitted() -> DatabaseBreaker:
    """The breaker, if it lets this request try the database; else a 503 at once (no thread
    waits out a deadline on a database that was just found silent)."""
    breaker = database_breaker()
    if not breaker.admit():
        raise Unavailable("The database is unavailable; try again shortly.")
    return breaker


async def get_worker(request: Request) -> TaskQueue:
    worker: TaskQueue = request.app.state.worker
    return worker


async def get_clustering_pool(request: Request) -> ClusteringPool:
    pool: ClusteringPool = request.app.state.clustering_pool
    return pool


async def get_embedding_index(request: Request) -> EmbeddingIndex:
    index: EmbeddingIndex = request.app.state.embedding_index
    return index


def get_presenter(request: Request) -> Presenter:
    """Responses say "has an embedding" of vectors from the model the embedding process
    published; read in a short read transaction of its own (the request's may write)."""
    breaker = _admitted()
    failed = False
    try:
        with request.app.state.read_session_factory() as session:
            return Presenter(active_model=published_model_id(session))
    except BaseException as exc:
        failed = lost_connection(exc)
        raise
    finally:
        breaker.settle(failed)


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": the commit happens before the response is sent, so a client never
# hears "stored" for a transaction that then fails, and background work sees the rows.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
HealthSessionDep = Annotated[Session, Depends(get_health_session, scope="function")]
WorkerDep = Annotated[TaskQueue, Depends(get_worker)]
ClusteringPoolDep = Annotated[ClusteringPool, Depends(get_clustering_pool)]
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
