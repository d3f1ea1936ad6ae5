"""Model loading: once, on the embedder's one loader thread, never on a request thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from config import Settings
from processing import feature_extraction as fe
from processing.embedding_spec import EmbedderSpec
from tests.api.helpers import upload
from tests.factories import jpeg_bytes


def test_concurrent_first_use_loads_once_on_the_loader_thread(
    tiny_dinov3_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    managed = fe.ManagedEmbedder(EmbedderSpec(str(tiny_dinov3_dir), device="cpu"))
    start = threading.Barrier(8)
    results: list[object] = []

    def first_use() -> None:
        start.wait()
        results.append(managed.load())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    with caplog.at_level(logging.INFO, logger=fe.__name__):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 8
    assert all(result is results[0] for result in results)
    loaded = [r for r in caplog.records if "loaded on" in r.getMessage()]
    assert [r.threadName for r in loaded] == ["model-load"]
    loader_threads = [t for t in threading.enumerate() if t.name == "model-load"]
    assert not loader_threads  # one-shot: gone once the model is loaded


def test_a_load_failure_is_remembered_and_not_retried(tmp_path: Path) -> None:
    managed = fe.ManagedEmbedder(
        EmbedderSpec(str(tmp_path / "missing"), device="cpu", fallback=False)
    )
    with pytest.raises(fe.EmbedderLoadError) as first:
        managed.load()
    with pytest.raises(fe.EmbedderLoadError) as second:
        managed.load(timeout=0)
    assert second.value is first.value


@pytest.fixture
def gated_load(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The real DINOv3 load, held back until the test opens the gate."""
    gate = threading.Event()
    real_build = fe.TransformersEmbedder._build

    def build(self: fe.TransformersEmbedder) -> Any:
        assert gate.wait(timeout=60)
        return real_build(self)

    monkeypatch.setattr(fe.TransformersEmbedder, "_build", build)
    yield gate
    gate.set()


def test_requests_answer_503_while_the_model_loads_then_work(
    settings: Settings, session_factory: sessionmaker[Session], gated_load: threading.Event
) -> None:
    embedder = fe.ManagedEmbedder(settings.embedder_spec)
    app = create_app(
        settings, session_factory=session_factory, embedder=embedder, threaded_worker=False
    )
    with TestClient(app) as client:
        response = client.get("/images/999999/similar")
        assert response.status_code == 503, response.text
        assert "still loading" in response.json()["detail"]
        assert client.get("/health").status_code == 200  # never waits for the model

        gated_load.set()
        embedder.load(timeout=60)
        # The worker publishes the model it loaded (here: when it next runs, in this thread).
        upload(client, [("a.jpg", jpeg_bytes(seed=5))])
        assert client.get("/images/999999/similar").status_code == 404
        assert client.get("/health").json()["model"]["active_model"] == embedder.model_id
