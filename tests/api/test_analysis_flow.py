"""An analysis writes its labels only if the batch did not change while it clustered."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from sqlalchemy import delete
from sqlalchemy.orm import Session

from database.models import ImageBatchAssociation
from processing.grouping import GroupingResult, ImageGrouper
from services import analysis_service
from tests.api.helpers import new_batch, upload
from tests.factories import jpeg_bytes


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
