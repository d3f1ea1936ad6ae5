"""Big batches, small answers: `view=summary` of a batch, and batches made of many ids."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import String, cast, insert, select, update
from sqlalchemy.orm import Session

from database.models import Image, ImageBatch, ImageBatchAssociation
from tests.api.helpers import new_batch, upload
from tests.factories import REAL_PHOTOS, burst, real_photo

GROUPING = {"min_cluster_size": 2, "min_samples": 1, "metric": "euclidean"}


def _without_members(page: dict[str, Any]) -> dict[str, Any]:
    """The page as its summary must read: no memberships, the notes only in `groups`."""
    parameters = page["parameters"]
    if parameters is not None:
        parameters = {k: v for k, v in parameters.items() if k != "group_notes"}
    return {**page, "image_associations": [], "parameters": parameters}


def _analysed_batch(client: TestClient) -> tuple[int, list[int], dict[str, Any]]:
    frames = [
        frame
        for at, name in enumerate(REAL_PHOTOS[:3])
        for frame in burst(real_photo(name), frames=4, seed=at, size=(96, 72))
    ]
    ids = upload(client, [(f"{i}.jpg", frame) for i, frame in enumerate(frames)])
    batch_id = new_batch(client, ids)
    response = client.put(f"/batches/{batch_id}/analyze?view=summary", json=GROUPING)
    assert response.status_code == 200, response.text
    return batch_id, ids, response.json()


def test_analyze_summary_is_the_pages_counts_and_groups_without_members(
    client: TestClient,
) -> None:
    batch_id, ids, summary = _analysed_batch(client)
    page = client.get(f"/batches/{batch_id}").json()

    assert summary["image_associations"] == []
    assert len(page["image_associations"]) == summary["image_count"] == len(ids)
    assert len(page["groups"]) >= 2  # something to compare
    assert summary == _without_members(page)
    assert "group_notes" in page["parameters"]
    again = client.get(f"/batches/{batch_id}", params={"view": "summary"})
    assert again.status_code == 200
    assert again.json() == summary


def test_a_summarys_split_stays_only_while_its_image_is_in_the_group(
    client: TestClient, db: Session
) -> None:
    batch_id, ids, _ = _analysed_batch(client)
    page = client.get(f"/batches/{batch_id}").json()
    label_of = {a["image"]["id"]: a["group_label"] for a in page["image_associations"]}
    first, second = page["groups"][0]["label"], page["groups"][1]["label"]
    inside = next(i for i, label in label_of.items() if label == first)
    elsewhere = next(i for i, label in label_of.items() if label == second)
    notes = [
        {
            "label": first,
            "cohesion": 0.9,
            "may_hold_moments": True,
            "split_before_image_id": inside,
        },
        # Its split image is in another group now, or in no batch: no split.
        {"label": second, "cohesion": 0.8, "split_before_image_id": ids[0] + 10_000},
        {"label": "Group 99", "cohesion": 0.7, "split_before_image_id": elsewhere},
    ]
    parameters = {**page["parameters"], "group_notes": notes}
    db.execute(update(ImageBatch).where(ImageBatch.id == batch_id).values(parameters=parameters))
    db.flush()

    page = client.get(f"/batches/{batch_id}").json()
    summary = client.get(f"/batches/{batch_id}", params={"view": "summary"}).json()

    assert summary["groups"] == page["groups"]
    by_label = {group["label"]: group for group in summary["groups"]}
    assert by_label[first]["split_before_image_id"] == inside
    assert by_label[first]["may_hold_moments"] is True
    assert by_label[second]["split_before_image_id"] is None
    assert by_label[second]["cohesion"] == 0.8
    assert "Group 99" not in by_label


def test_an_unknown_view_is_refused(client: TestClient) -> None:
    batch_id = new_batch(client, [])
    assert client.get(f"/batches/{batch_id}", params={"view": "tiny"}).status_code == 422
    assert client.put(f"/batches/{batch_id}/analyze?view=all", json={}).status_code == 422


def _many_images(db: Session, count: int) -> list[int]:
    rows = [
        {
            "filename": f"m{n}.jpg",
            "original_filename": f"m{n}.jpg",
            "file_path": f"images/m{n}.jpg",
            "image_hash": f"{n:064x}",
            "file_size": 1,
            "mime_type": "image/jpeg",
        }
        for n in range(count)
    ]
    db.execute(insert(Image), rows)
    return list(db.scalars(select(Image.id).order_by(Image.id)))


def test_a_batch_of_forty_thousand_ids_is_made_whole(client: TestClient, db: Session) -> None:
    ids = _many_images(db, 40_000)
    response = client.post(
        "/batches/", params={"view": "summary"}, json={"name": "big", "image_ids": ids}
    )
    assert response.status_code == 201, response.text
    summary = response.json()
    assert summary["image_count"] == 40_000
    assert summary["image_associations"] == []
    assert summary["preview_image_ids"] == ids[:4]

    page = client.get(f"/batches/{summary['id']}").json()
    assert [a["image"]["id"] for a in page["image_associations"]] == ids
    assert _without_members(page) == summary


def test_create_answers_the_full_page_by_default_and_404s_unknown_ids(
    client: TestClient, db: Session
) -> None:
    ids = _many_images(db, 5)
    response = client.post("/batches/", json={"name": "five", "image_ids": [*ids, ids[0]]})
    assert response.status_code == 201, response.text
    assert [a["image"]["id"] for a in response.json()["image_associations"]] == ids

    unknown = [ids[0], ids[-1] + 1, ids[-1] + 7]
    refused = client.post("/batches/", json={"name": "bad", "image_ids": unknown})
    assert refused.status_code == 404
    assert refused.json()["missing_ids"] == unknown[1:]
    assert client.get("/batches/").headers["X-Total-Count"] == "1"


def _batch_of_groups(client: TestClient, db: Session, groups: int) -> tuple[int, list[int]]:
    """A batch of `groups` images, each labelled a group of its own."""
    ids = _many_images(db, groups)
    batch_id = new_batch(client, ids)
    number = ImageBatchAssociation.image_id - ids[0] + 1
    db.execute(
        update(ImageBatchAssociation)
        .where(ImageBatchAssociation.batch_id == batch_id)
        .values(group_label="Group " + cast(number, String), quality_rank=1)
    )
    db.flush()
    return batch_id, ids


def test_a_summary_lists_its_groups_a_page_at_a_time(client: TestClient, db: Session) -> None:
    batch_id, _ = _batch_of_groups(client, db, 1_001)
    page = client.get(f"/batches/{batch_id}").json()
    assert len(page["groups"]) == 1_001  # the full page, the frontend's, lists every group

    first = client.get(f"/batches/{batch_id}", params={"view": "summary"})
    assert first.status_code == 200
    assert first.headers["X-Total-Groups"] == "1001"
    assert first.json()["groups"] == page["groups"][:1_000]
    assert first.json()["image_count"] == 1_001

    window = {"view": "summary", "group_offset": 998, "group_limit": 5}
    rest = client.get(f"/batches/{batch_id}", params=window)
    assert rest.json()["groups"] == page["groups"][998:]
    assert rest.headers["X-Total-Groups"] == "1001"


def test_analyze_summary_lists_the_groups_asked(client: TestClient) -> None:
    batch_id, _, _ = _analysed_batch(client)
    window = {"view": "summary", "group_offset": 1, "group_limit": 1}
    response = client.put(f"/batches/{batch_id}/analyze", params=window, json=GROUPING)
    assert response.status_code == 200, response.text
    page = client.get(f"/batches/{batch_id}").json()
    assert response.json()["groups"] == page["groups"][1:2]
    assert response.headers["X-Total-Groups"] == str(len(page["groups"]))


def test_the_full_page_lists_every_group_whatever_the_window(
    client: TestClient, db: Session
) -> None:
    batch_id, _ = _batch_of_groups(client, db, 12)
    window = {"group_offset": 3, "group_limit": 2}
    page = client.get(f"/batches/{batch_id}", params={"view": "full", **window})
    assert page.status_code == 200
    assert [g["label"] for g in page.json()["groups"]] == [f"Group {n}" for n in range(1, 13)]
    too_many = {"view": "summary", "group_limit": 5_001}
    assert client.get(f"/batches/{batch_id}", params=too_many).status_code == 422


def test_a_new_batchs_summary_counts_what_its_page_holds(client: TestClient, db: Session) -> None:
    ids = _many_images(db, 10)
    active = client.get("/health").json()["model"]["active_model"]
    assert active is not None
    for image_id, model in zip(ids, [active] * 3 + ["another-model"] * 2, strict=False):
        db.execute(update(Image).where(Image.id == image_id).values(embedding_model=model))
    db.flush()
    chosen = [ids[9], *ids[:7], ids[0]]  # out of order, one twice

    created = client.post(
        "/batches/", params={"view": "summary"}, json={"name": "ten", "image_ids": chosen}
    )

    assert created.status_code == 201, created.text
    summary = created.json()
    page = client.get(f"/batches/{summary['id']}").json()
    assert summary == _without_members(page)
    assert (summary["image_count"], summary["embedded_count"]) == (8, 3)
    assert summary["preview_image_ids"] == ids[:4]
