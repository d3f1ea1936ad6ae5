"""Fixtures shared by the API tests of imports in place."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from config import Settings
from processing.feature_extraction import ManagedEmbedder


@pytest.fixture
def import_root(tmp_path: Path) -> Path:
    root = tmp_path / "cards"
    root.mkdir()
    return root


@pytest.fixture
def importing_client(
    settings: Settings,
    session_factory: sessionmaker[Session],
    tiny_embedder: ManagedEmbedder,
    import_root: Path,
) -> Iterator[TestClient]:
    allowed = settings.model_copy(update={"import_roots": [import_root]})
    app = create_app(
        allowed, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    with TestClient(app) as client:
        yield client
