"""Analyze, manual groups and ranking through the real app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import adjusted_rand_score
from sqlalchemy import update
from sqlalchemy.orm import Session

from database.models import Image
from processing.grouping import (
    DEFAULT_MIN_CLUSTER_SIZE,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_TIME_GAP_SECONDS,
)
from tests.api.helpers import new_batch, upload
from tests.factories import REAL_PHOTOS, burst, jpeg_bytes, real_photo


def groups_of(batch: dict) -> dict[int, str]:
    return {a["image"]["id"]: a["group_label"] for a in batch["image_associations"]}


@pytest.mark.slow
def test_analyze_puts_each_real_photo_burst_in_its_own_group(offline_client: TestClient) -> None:
    truth: dict[int, int] = {}
    for index, name in enumerate(REAL_PHOTOS):
        frames = burst(real_photo(name), frames=6, seed=index)
        ids = upload(offline_client, [(f"{name}-{k}.jpg", f) for k, f in enumerate(frames)])
        truth.update(dict.fromkeys(ids, index))
    batch_id = new_batch(offline_client, list(truth))

    response = offline_client.put(f"/batches/{batch_id}/analyze", json={})
    assert response.status_code == 200, response.text
    body = response.json()
    labels = groups_of(body)

    assert body["status"] == "complete"
    assert body["error"] is None
    assert body["parameters"]["min_cluster_size"] == DEFAULT_MIN_CLUSTER_SIZE
    assert body["parameters"]["embedding_model"] == "efficientnet-lite0+mac"
    ids = sorted(truth)
    assert adjusted_rand_score([truth[i] for i in ids], [labels[i] for i in ids]) == 1.0
    assert sorted(set(labels.values())) == sorted(f"Group {k}" for k in range(1, 7))
    # Within each group the ranks are 1..n, so each group has exactly one suggested keeper.
    for group in set(labels.values()):
        ranks = sorted(
            a["quality_rank"] for a in body["image_associations"] if a["group_label"] == group
        )
        assert ranks == list(range(1, 7))


def test_analyze_with_tiny_dinov3_labels_every_image(client: TestClient) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes((96, 96), seed=i)) for i in range(8)])
    batch_id = new_batch(client, ids)

    response = client.put(
        f"/batches/{batch_id}/analyze",
        json={"min_cluster_size": 2, "min_samples": 1, "metric": "euclidean"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "complete"
    assert body["parameters"]["metric"] == "euclidean"
    labels = groups_of(body).values()
    assert all(label == "Ungrouped" or label.startswith("Group ") for label in labels)
    # Stored: a second read gives the same answer.
    assert (
        client.get(f"/batches/{batch_id}").json()["image_associations"]
        == body["image_associations"]
    )


def test_analyze_without_a_body_uses_defaults(client: TestClient) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=20 + i)) for i in range(3)])
    batch_id = new_batch(client, ids)
    response = client.put(f"/batches/{batch_id}/analyze")
    assert response.status_code == 200, response.text
    parameters = response.json()["parameters"]
    assert parameters["min_samples"] == DEFAULT_MIN_SAMPLES
    assert parameters["time_gap_seconds"] == DEFAULT_TIME_GAP_SECONDS
    assert parameters["use_capture_time"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"min_cluster_size": 1},
        {"min_samples": 0},
        {"metric": "manhattan"},
        {"min_cluster_size": "many"},
    ],
)
def test_analyze_validates_parameters(client: TestClient, body: dict) -> None:
    batch_id = new_batch(client, [])
    response = client.put(f"/batches/{batch_id}/analyze", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_analyze_empty_batch_is_400(client: TestClient) -> None:
    batch_id = new_batch(client, [])
    response = client.put(f"/batches/{batch_id}/analyze", json={})
    assert response.status_code == 400
    assert "no images" in response.json()["detail"]
    assert client.put("/batches/999999/analyze", json={}).status_code == 404


def test_analyze_refuses_while_embeddings_are_missing(client: TestClient, db: Session) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=30 + i)) for i in range(4)])
    batch_id = new_batch(client, ids)
    db.execute(
        update(Image).where(Image.id.in_(ids[:3])).values(features=None, embedding_model=None)
    )
    db.commit()

    response = client.put(f"/batches/{batch_id}/analyze", json={})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("3 of 4 images")
    batch = client.get(f"/batches/{batch_id}").json()
    assert batch["status"] == "pending"
    assert batch["embedded_count"] == 1


def test_analyze_never_mixes_models(client: TestClient, db: Session) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=40 + i)) for i in range(3)])
    batch_id = new_batch(client, ids)
    db.execute(update(Image).where(Image.id == ids[0]).values(embedding_model="some-older-model"))
    db.commit()

    response = client.put(f"/batches/{batch_id}/analyze", json={})
    assert response.status_code == 409
    assert "some-older-model" in response.json()["detail"]
    # A vector from another model does not count as embedded.
    batch = client.get(f"/batches/{batch_id}").json()
    assert batch["embedded_count"] == 2
    assert [i["has_embedding"] for i in client.get("/images/").json()] == [False, True, True]


def test_failed_analysis_marks_the_batch_failed(client: TestClient, db: Session) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=50 + i)) for i in range(3)])
    batch_id = new_batch(client, ids)
    # A vector of the wrong length (as if the stored bytes were damaged).
    db.execute(update(Image).where(Image.id == ids[0]).values(features=b"\x00" * 12))
    db.commit()

    response = client.put(f"/batches/{batch_id}/analyze", json={})
    assert response.status_code == 500
    assert response.json()["detail"].startswith(f"Analysis of batch {batch_id} failed")
    batch = client.get(f"/batches/{batch_id}").json()
    assert batch["status"] == "failed"
    assert batch["error"].startswith("Analysis failed")

    # The batch stays usable: repair the vector and analyze again.
    db.execute(update(Image).where(Image.id == ids[0]).values(embedding_model=None, features=None))
    db.commit()
    client.app.state.worker.submit([ids[0]])  # type: ignore[attr-defined]
    again = client.put(f"/batches/{batch_id}/analyze", json={})
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "complete"
    assert again.json()["error"] is None


def test_update_groups_by_hand(client: TestClient) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=60 + i)) for i in range(4)])
    batch_id = new_batch(client, ids)

    group_map = {"Keepers": ids[:2], "Rest": ids[2:]}
    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": group_map})
    assert response.status_code == 200, response.text
    body = response.json()
    assert groups_of(body) == {i: ("Keepers" if i in ids[:2] else "Rest") for i in ids}
    ranks = {a["image"]["id"]: a["quality_rank"] for a in body["image_associations"]}
    assert sorted(ranks[i] for i in ids[:2]) == [1, 2]


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        (lambda ids: {"A": ids[:3]}, "missing from the map"),
        (lambda ids: {"A": ids, "B": [999999]}, "not in the batch"),
        (lambda ids: {"A": ids, "B": ids[:1]}, "more than once"),
    ],
)
def test_update_groups_must_cover_the_batch_exactly_once(
    client: TestClient, mapping, problem: str
) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=70 + i)) for i in range(4)])
    batch_id = new_batch(client, ids)
    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": mapping(ids)})
    assert response.status_code == 400
    assert problem in response.json()["detail"]
    assert set(groups_of(client.get(f"/batches/{batch_id}").json()).values()) == {None}


@pytest.mark.parametrize("label", ["", "   ", "x" * 51])
def test_update_groups_checks_labels(client: TestClient, label: str) -> None:
    ids = upload(client, [("a.jpg", jpeg_bytes(seed=80))])
    batch_id = new_batch(client, ids)
    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": {label: ids}})
    assert response.status_code == 422


def test_rank_group(client: TestClient) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=90 + i)) for i in range(3)])
    batch_id = new_batch(client, ids)
    client.put(f"/batches/{batch_id}/groups", json={"group_map": {"Group 1 / best": ids}})

    response = client.post(f"/batches/{batch_id}/groups/Group%201%20%2F%20best/rank")
    assert response.status_code == 200, response.text
    ranks = sorted(a["quality_rank"] for a in response.json()["image_associations"])
    assert ranks == [1, 2, 3]
    assert client.post(f"/batches/{batch_id}/groups/Nope/rank").status_code == 404
