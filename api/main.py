"""The FastAPI app: `uvicorn api.main:app` serves it; `create_app` builds one for tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from api import cluster_routes, image_routes
from api.deps import EmbedderDep, ReadSessionDep, WorkerDep
from api.schemas import HealthResponse, RootResponse
from api.tasks import build_embedder, build_worker
from config import Settings, get_settings
from database.database import (
    create_db_engine,
    create_read_session_factory,
    create_session_factory,
)
from processing.feature_extraction import ManagedEmbedder
from services.errors import AppError
from services.health_service import health_report
from services.similarity_service import EmbeddingIndex
from services.startup_service import reconcile_storage
from utils.file_handling import ensure_storage_dirs, install_file_hooks

logger = logging.getLogger(__name__)


async def app_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.message, **exc.extra})


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    read_session_factory: sessionmaker[Session] | None = None,
    embedder: ManagedEmbedder | None = None,
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
        engine = None
        factory, read_factory = session_factory, read_session_factory or session_factory
        if factory is None:
            engine = create_db_engine(settings.resolved_database_url)
            factory = create_session_factory(engine)
            read_factory = create_read_session_factory(engine)
        assert read_factory is not None
        install_file_hooks(factory)
        await anyio.to_thread.run_sync(reconcile_storage, factory, settings)
        model = embedder or build_embedder(settings)
        worker = build_worker(settings, factory, model, threaded=threaded_worker)
        app.state.settings = settings
        app.state.session_factory = factory
        app.state.read_session_factory = read_factory
        app.state.embedder = model
        app.state.worker = worker
        app.state.embedding_index = EmbeddingIndex()
        worker.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(worker.stop)
            if engine is not None:
                engine.dispose()
            Image.MAX_IMAGE_PIXELS = pillow_limit

    app = FastAPI(
        title="Pixal Judge server",
        summary="Upload a shoot, group similar shots, pick the keepers.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Total-Count", "X-Rejected-Files"],
    )
    app.add_exception_handler(AppError, app_error_handler)
    app.include_router(image_routes.router)
    app.include_router(cluster_routes.router)

    @app.get("/", operation_id="root", response_model=RootResponse, tags=["Status"])
    def root() -> dict[str, Any]:
        """Say hello; handy to see that the server runs."""
        return {"message": "Pixal Judge server is running. API docs: /docs"}

    @app.get("/health", operation_id="health", response_model=HealthResponse, tags=["Status"])
    def health(session: ReadSessionDep, embedder: EmbedderDep, worker: WorkerDep) -> dict[str, Any]:
        """Database and model state, and how much background processing is pending."""
        return health_report(session, embedder, worker.queued)

    return app


def __getattr__(name: str) -> Any:
    # `uvicorn api.main:app` builds the app on first access, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
