"""An analysis writes its labels only if the batch did not change while it clustered; in a
worker process it labels as in the server's own, and a lost worker is a clear error."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from config import Settings
from database.models import ImageBatchAssociation
from processing.feature_extraction import ManagedEmbedder
from processing.grouping import GroupingResult, ImageGrouper
from services import analysis_service
from tests.api.helpers import new_batch, upload
from tests.factories import REAL_PHOTOS, burst, jpeg_bytes, real_photo


def test_members_removed_while_clustering_answer_409_and_nothing_is_written(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes((96, 96), seed=70 + i)) for i in range(6)])
    batch_id = new_batch(client, ids)

    class RemovesAMember(ImageGrouper):
        """The real grouper; meanwhile another client removes an image from the batch."""

        def fit_labels(self, vectors: NDArray[Any], *args: Any) -> GroupingResult:
            db.execute(
                delete(ImageBatchAssociation).where(
                    ImageBatchAssociation.batch_id == batch_id,
                    ImageBatchAssociation.image_id == ids[0],
                )
            )
            db.commit()
            return super().fit_labels(vectors, *args)

    monkeypatch.setattr(analysis_service, "ImageGrouper", RemovesAMember)
    response = client.put(f"/batches/{batch_id}/analyze", json={"min_cluster_size": 2})

    assert response.status_code == 409, response.text
    assert "changed while it was being analysed" in response.json()["detail"]
    batch = client.get(f"/batches/{batch_id}").json()
    assert batch["status"] != "complete"
    assert {a["group_label"] for a in batch["image_associations"]} == {None}
    assert len(batch["image_associations"]) == 5

    # Analysed again, the batch as it now is gets its labels.
    monkeypatch.setattr(analysis_service, "ImageGrouper", ImageGrouper)
    again = client.put(f"/batches/{batch_id}/analyze", json={"min_cluster_size": 2})
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "complete"


@pytest.fixture
def process_client(
    settings: Settings, session_factory: sessionmaker[Session], tiny_embedder: ManagedEmbedder
) -> Iterator[TestClient]:
    """The app of `client` with clustering in a worker process (the server's default)."""
    isolated = settings.model_copy(update={"analysis_isolation": "process"})
    app = create_app(
        isolated, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    with TestClient(app) as test_client:
        yield test_client


def die(*_: object) -> None:
    """Clustering that takes the worker process down (SIGKILL, as the OOM killer would)."""
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_a_worker_process_labels_a_batch_as_the_server_process_does(
    client: TestClient, process_client: TestClient
) -> None:
    frames = [f for seed in range(3) for f in burst(real_photo(REAL_PHOTOS[seed]), 4, seed)]
    ids = upload(client, [(f"{i}.jpg", frame) for i, frame in enumerate(frames)])
    batch_id = new_batch(client, ids)
    body = {"min_cluster_size": 2, "min_samples": 1}

    in_threads = client.put(f"/batches/{batch_id}/analyze", json=body)
    in_process = process_client.put(f"/batches/{batch_id}/analyze", json=body)

    assert in_threads.status_code == in_process.status_code == 200, in_process.text
    threads, process = in_threads.json(), in_process.json()
    assert process["image_associations"] == threads["image_associations"]
    assert process["parameters"] == threads["parameters"]
    assert process["parameters"]["groups"] > 0


@pytest.mark.slow
def test_a_worker_process_lost_mid_analysis_fails_the_batch_with_a_clear_error(
    process_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = upload(process_client, [(f"{i}.jpg", jpeg_bytes((96, 96), seed=i)) for i in range(4)])
    batch_id = new_batch(process_client, ids)

    monkeypatch.setattr(analysis_service, "fit_shared_labels", die)
    lost = process_client.put(f"/batches/{batch_id}/analyze", json={})

    assert lost.status_code == 500, lost.text
    assert "clustering process ended unexpectedly" in lost.json()["detail"]
    batch = process_client.get(f"/batches/{batch_id}").json()
    assert batch["status"] == "failed"
    assert "clustering process ended unexpectedly" in batch["error"]

    # A new worker process takes the next analysis.
    monkeypatch.undo()
    again = process_client.put(f"/batches/{batch_id}/analyze", json={"min_cluster_size": 2})
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "complete"
