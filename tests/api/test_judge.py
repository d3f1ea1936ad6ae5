"""The judge: similar images and export (quality and keepers are in test_analysis)."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from database.models import Image
from tests.factories import REAL_PHOTOS, burst, jpeg_bytes, real_photo


def upload(client: TestClient, files: list[tuple[str, bytes]]) -> list[int]:
    response = client.post(
        "/images/upload", files=[("files", (n, d, "image/jpeg")) for n, d in files]
    )
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


def new_batch(client: TestClient, image_ids: list[int], name: str = "shoot") -> int:
    response = client.post("/batches/", json={"name": name, "image_ids": image_ids})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.mark.slow
def test_nearest_neighbour_is_a_burst_mate(offline_client: TestClient) -> None:
    bursts = {
        name: upload(
            offline_client,
            [(f"{name}{k}", f) for k, f in enumerate(burst(real_photo(name), 3, seed=i))],
        )
        for i, name in enumerate(REAL_PHOTOS[:4])
    }
    for name, ids in bursts.items():
        response = offline_client.get(f"/images/{ids[0]}/similar", params={"limit": 2})
        assert response.status_code == 200, response.text
        found = response.json()
        assert {f["image"]["id"] for f in found} == set(ids[1:]), name
        similarities = [f["similarity"] for f in found]
        assert similarities == sorted(similarities, reverse=True)
        assert all(-1.0 <= s <= 1.0001 for s in similarities)


def test_similar_limit_and_batch_filter(client: TestClient) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=i)) for i in range(6)])
    batch_id = new_batch(client, ids[:3])

    everywhere = client.get(f"/images/{ids[0]}/similar", params={"limit": 3}).json()
    assert len(everywhere) == 3
    assert ids[0] not in [f["image"]["id"] for f in everywhere]

    within = client.get(f"/images/{ids[0]}/similar", params={"batch_id": batch_id}).json()
    assert sorted(f["image"]["id"] for f in within) == ids[1:3]


def test_similar_error_paths(client: TestClient, db: Session) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=10 + i)) for i in range(2)])
    assert client.get("/images/999999/similar").status_code == 404
    assert client.get(f"/images/{ids[0]}/similar", params={"batch_id": 999999}).status_code == 404
    assert client.get(f"/images/{ids[0]}/similar", params={"limit": 0}).status_code == 422

    db.execute(update(Image).where(Image.id == ids[0]).values(features=None, embedding_model=None))
    db.commit()
    response = client.get(f"/images/{ids[0]}/similar")
    assert response.status_code == 409
    assert "no embedding" in response.json()["detail"]


def test_export_csv_matches_the_batch(client: TestClient) -> None:
    ids = upload(client, [(f"=cmd{i}.jpg", jpeg_bytes(seed=20 + i)) for i in range(3)])
    batch_id = new_batch(client, ids)
    client.put(f"/batches/{batch_id}/groups", json={"group_map": {"A": ids[:2], "B": ids[2:]}})
    batch = client.get(f"/batches/{batch_id}").json()

    response = client.get(f"/batches/{batch_id}/export", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f"batch-{batch_id}.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))

    assert [int(r["image_id"]) for r in rows] == [
        a["image"]["id"] for a in batch["image_associations"]
    ]
    assert [r["group_label"] for r in rows] == [
        a["group_label"] for a in batch["image_associations"]
    ]
    assert [r["is_keeper"] for r in rows].count("True") == 2
    # A name that a spreadsheet would run as a formula is defused.
    assert all(r["original_filename"].startswith("'=cmd") for r in rows)


def test_export_json_and_errors(client: TestClient) -> None:
    ids = upload(client, [("a.jpg", jpeg_bytes(seed=30))])
    batch_id = new_batch(client, ids)

    rows = client.get(f"/batches/{batch_id}/export", params={"format": "json"}).json()
    assert rows[0]["image_id"] == ids[0]
    assert rows[0]["original_filename"] == "a.jpg"
    assert client.get(f"/batches/{batch_id}/export", params={"format": "xml"}).status_code == 422
    assert client.get("/batches/999999/export").status_code == 404
