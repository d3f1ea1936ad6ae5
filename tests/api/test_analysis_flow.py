"""An analysis writes its labels only if the batch did not change while it clustered; in a
worker process it labels as in the server's own, the server's process never holds its rows,
and a lost worker is a 503 that leaves nothing half-written."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from api.main import create_app
from config import Settings
from crud import crud_batch, crud_image
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


def committed_client(settings: Settings, embedder: ManagedEmbedder, isolation: str) -> TestClient:
    """The app of `client`, committing to the test database (a worker process reads it on
    its own engine), with the analysis on threads or in a worker process (the default)."""
    isolated = settings.model_copy(update={"analysis_isolation": isolation})
    return TestClient(create_app(isolated, embedder=embedder, threaded_worker=False))


@pytest.fixture
def process_client(
    settings: Settings, clean_database: Engine, tiny_embedder: ManagedEmbedder
) -> Iterator[TestClient]:
    with committed_client(settings, tiny_embedder, "process") as test_client:
        yield test_client


@pytest.mark.slow
def test_a_worker_process_labels_a_batch_as_the_server_process_does(
    settings: Settings, process_client: TestClient, tiny_embedder: ManagedEmbedder
) -> None:
    frames = [f for seed in range(3) for f in burst(real_photo(REAL_PHOTOS[seed]), 4, seed)]
    ids = upload(process_client, [(f"{i}.jpg", frame) for i, frame in enumerate(frames)])
    batch_id = new_batch(process_client, ids)
    body = {"min_cluster_size": 2, "min_samples": 1}

    with committed_client(settings, tiny_embedder, "thread") as thread_client:
        in_threads = thread_client.put(f"/batches/{batch_id}/analyze", json=body)
    in_process = process_client.put(f"/batches/{batch_id}/analyze", json=body)

    assert in_threads.status_code == in_process.status_code == 200, in_process.text
    threads, process = in_threads.json(), in_process.json()
    assert process["image_associations"] == threads["image_associations"]
    assert process["parameters"] == threads["parameters"]
    assert process["parameters"]["groups"] > 0
    summary = process_client.put(f"/batches/{batch_id}/analyze?view=summary", json=body)
    assert summary.status_code == 200, summary.text
    assert summary.headers["X-Total-Groups"] == str(process["parameters"]["groups"])
    assert summary.json()["image_associations"] == []


def refuse_rows(*_: object, **__: object) -> None:
    raise AssertionError("the server's process read or wrote the analysis's rows")


@pytest.mark.slow
def test_the_server_process_never_holds_the_rows_of_an_analysis(
    process_client: TestClient, clean_database: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this (the server's) process the functions that read the vectors, the quality rows
    and the page, and that write the labels, refuse; the worker process has its own."""
    ids = upload(process_client, [(f"{i}.jpg", jpeg_bytes((96, 96), seed=i)) for i in range(6)])
    batch_id = new_batch(process_client, ids)
    for module, name in (
        (crud_image, "clustering_rows"),
        (crud_image, "judged_rows"),
        (crud_batch, "member_rows"),
        (crud_batch, "set_member_labels"),
    ):
        monkeypatch.setattr(module, name, refuse_rows)

    response = process_client.put(f"/batches/{batch_id}/analyze", json={"min_cluster_size": 2})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "complete"
    assert len(response.json()["image_associations"]) == 6
    with Session(clean_database) as session:
        labels = session.scalars(
            select(ImageBatchAssociation.group_label).where(
                ImageBatchAssociation.batch_id == batch_id
            )
        ).all()
    assert None not in labels
    assert len(labels) == 6


class DiesWhileWriting(ImageGrouper):
    """The real grouper; in a worker process it also arranges that the process is SIGKILLed
    (as the OOM killer would) right after the labels' UPDATE ran, before the commit."""

    def fit_labels(self, *args: Any, **kwargs: Any) -> GroupingResult:
        if multiprocessing.parent_process() is not None:  # never the test's own process
            write = crud_batch.set_member_labels

            def write_then_die(*w_args: Any, **w_kwargs: Any) -> None:
                write(*w_args, **w_kwargs)
                os.kill(os.getpid(), signal.SIGKILL)

            crud_batch.set_member_labels = write_then_die  # type: ignore[assignment]
        return super().fit_labels(*args, **kwargs)


@pytest.mark.slow
def test_a_worker_process_killed_while_writing_is_a_503_and_writes_nothing(
    process_client: TestClient, clean_database: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = upload(process_client, [(f"{i}.jpg", jpeg_bytes((96, 96), seed=i)) for i in range(4)])
    batch_id = new_batch(process_client, ids)

    monkeypatch.setattr(analysis_service, "ImageGrouper", DiesWhileWriting)
    lost = process_client.put(f"/batches/{batch_id}/analyze", json={"min_cluster_size": 2})

    assert lost.status_code == 503, lost.text
    assert lost.headers["Retry-After"].isdigit()
    assert "analysis process ended unexpectedly" in lost.json()["detail"]
    batch = process_client.get(f"/batches/{batch_id}").json()
    assert batch["status"] == "pending"
    assert {a["group_label"] for a in batch["image_associations"]} == {None}
    assert {a["quality_rank"] for a in batch["image_associations"]} == {None}

    # A new worker process takes the next analysis.
    monkeypatch.undo()
    again = process_client.put(f"/batches/{batch_id}/analyze", json={"min_cluster_size": 2})
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "complete"
