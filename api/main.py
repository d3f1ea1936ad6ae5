"""The FastAPI app: `uvicorn api.main:app` serves it; `create_app` builds one for tests."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import cluster_routes, decision_routes, image_routes, import_routes, judge_routes
from api.deps import HealthSessionDep, SettingsDep, WorkerDep
from api.errors import RETRY_AFTER_SECONDS, install_exception_handlers
from api.guards import BodyPace, RequestGuard
from api.headers import NoSniffMiddleware, method_not_allowed_handler
from api.schemas import (
    HealthResponse,
    RootResponse,
    document_slow_bodies,
    encoded_batch_answer,
    error_responses,
)
from config import Settings, get_settings
from database import unit_of_work
from database.database import (
    create_db_engine,
    create_read_session_factory,
    create_session_factory,
)
from processing.decode_gate import configure_decode_gate, restore_decode_gate
from processing.feature_extraction import ModelHost
from services.background.handoff import configure_shelf, restore_shelf
from services.background.startup import StorageLease, reconcile_storage
from services.background.wiring import build_embedder, build_worker, shelf_capacity
from services.clustering_pool import ClusteringPool, DatabaseTarget, WorkerDatabase
from services.health_service import health_report
from services.import_watch import ImportWatch
from services.similarity_service import EmbeddingIndex
from utils.file_handling import ensure_storage_dirs, storage_dirs

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    read_session_factory: sessionmaker[Session] | None = None,
    embedder: ModelHost | None = None,
    threaded_worker: bool = True,
) -> FastAPI:
    """Build the app. Tests pass their own session factory (a rolled-back transaction; reads
    then share it unless `read_session_factory` is given), embedder, or an inline worker."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ensure_storage_dirs(settings)
        # Our own limit (checked on upload) is the one that counts; Pillow's is set to match
        # for the life of the app.
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, settings.max_image_pixels
        previous_gate = configure_decode_gate(
            settings.decode_concurrency, settings.decode_memory_mb, settings.decode_wait_seconds
        )
        previous_shelf = configure_shelf(shelf_capacity(settings))
        engine = None
        factory, read_factory = session_factory, read_session_factory or session_factory
        if factory is None:
            engine = create_db_engine(
                settings.resolved_database_url, deadlines=settings.database_deadlines
            )
            factory = create_session_factory(engine)
            read_factory = create_read_session_factory(engine)
        assert read_factory is not None
        unit_of_work.install(factory)  # a factory passed in (tests) too
        lease = await anyio.to_thread.run_sync(StorageLease.acquire, settings.storage_root)
        try:
            await anyio.to_thread.run_sync(
                functools.partial(reconcile_storage, factory, settings, alone=lease.alone)
            )
        finally:
            lease.share()
        # The model lives with the worker that embeds (inline: a process of its own, or this
        # one with EMBEDDING_ISOLATION=thread; else Celery workers); its id is published in
        # the database, where requests read it.
        model = embedder or build_embedder(settings)
        worker = build_worker(settings, factory, model, threaded=threaded_worker)
        # ANALYSIS_WORKERS, ANALYSIS_QUEUE, ANALYSIS_WAIT_SECONDS; its workers are
        # ANALYSIS_ISOLATION: processes on their own engine (their clustering thread at
        # ANALYSIS_NICENESS), or threads of this process on its sessions.
        clustering = ClusteringPool(
            settings.analysis_workers,
            settings.analysis_queue,
            settings.analysis_wait_seconds,
            isolation=settings.analysis_isolation,
            niceness=settings.analysis_niceness,
            database=DatabaseTarget(settings.resolved_database_url, settings.database_deadlines),
            sessions=WorkerDatabase(factory, read_factory),
            # The worker encodes answers with api.schemas: imported as it starts (~1 s).
            preload=(encoded_batch_answer.__module__,),
        )
        clustering.start()
        app.state.settings = settings
        app.state.session_factory = factory
        app.state.read_session_factory = read_factory
        app.state.worker = worker
        app.state.embedding_index = EmbeddingIndex()
        app.state.clustering_pool = clustering
        worker.start()
        # Imports a crashed process left unfinished are finished (IMPORT_STALE_SECONDS).
        imports = ImportWatch(factory, settings, settings.import_stale_seconds, alone=lease.alone)
        if settings.import_roots:
            imports.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(imports.stop)
            await anyio.to_thread.run_sync(worker.stop)
            if model is not None and embedder is None:
                await anyio.to_thread.run_sync(model.close)  # ours, not a caller's
            await anyio.to_thread.run_sync(clustering.shutdown)
            lease.release()
            if engine is not None:
                engine.dispose()
            Image.MAX_IMAGE_PIXELS = pillow_limit
            restore_decode_gate(previous_gate)
            restore_shelf(previous_shelf)

    # Swagger UI and ReDoc served from the app (assets bundled in fastapi-offline), not a CDN:
    # the docs open on a machine without internet.
    app = FastAPIOffline(
        title="Pixal Judge server",
        summary="Upload a shoot, group similar shots, pick the keepers.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # The API key and the sizes are checked before a body is read (api/guards.py); added
    # before CORS, so it runs inside it and its answers carry the CORS headers too.
    app.add_middleware(
        RequestGuard,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        max_request_bytes=settings.max_request_bytes,
        max_part_bytes=settings.max_upload_bytes,
        body_pace=BodyPace(
            settings.body_min_bytes_per_second,
            settings.body_grace_seconds,
            settings.max_slow_bodies,
        ),
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=[
            "X-Total-Count",
            "X-Total-Groups",
            "X-Rejected-Files",
            "X-Rejected-Count",
            "Retry-After",
            "X-Page",
            "X-Total-Pages",
        ],
    )
    # Outermost: every answer, errors included, says "no sniffing". A stored file is served
    # with the type its bytes were validated as; a JPEG that is also valid HTML must never be
    # rendered as a page by a browser that guesses.
    app.add_middleware(NoSniffMiddleware)
    install_exception_handlers(app)
    build_openapi = app.openapi
    app.openapi = lambda: app.openapi_schema or document_slow_bodies(build_openapi())  # type: ignore[method-assign]
    app.add_exception_handler(StarletteHTTPException, method_not_allowed_handler)
    app.include_router(image_routes.router)
    app.include_router(cluster_routes.router)
    app.include_router(decision_routes.router)
    app.include_router(import_routes.router)
    app.include_router(judge_routes.router)

    @app.get(
        "/",
        operation_id="root",
        response_model=RootResponse,
        tags=["Status"],
        responses=error_responses(503),
    )
    async def root() -> dict[str, Any]:
        """Say hello; handy to see that the server runs."""
        # async: answered on the event loop, so it never waits for a request thread (they may
        # all be busy with a database that stopped answering).
        return {"message": "Pixal Judge server is running. API docs: /docs"}

    @app.get(
        "/health",
        operation_id="health",
        response_model=HealthResponse,
        tags=["Status"],
        responses={
            503: {
                "model": HealthResponse,
                "description": "The database is unreachable",
                "headers": error_responses(503)[503]["headers"],
            }
        },
    )
    def health(
        session: HealthSessionDep,
        worker: WorkerDep,
        settings: SettingsDep,
        response: Response,
    ) -> dict[str, Any]:
        """Database, storage and model state, and how much background processing is pending."""
        report = health_report(
            session,
            settings.embedding_model,
            worker.queued,
            storage_dirs(settings),
            settings.storage_min_free_bytes,
        )
        if report["database"] != "ok":
            response.status_code = 503
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return report

    return app


def __getattr__(name: str) -> Any:
    # `uvicorn api.main:app` builds the app on first access, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
