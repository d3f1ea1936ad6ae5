"""The /batches endpoints (membership part) through the real app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, event, update
from sqlalchemy.orm import Session

from database.models import ImageBatchAssociation
from tests.factories import jpeg_bytes


def upload_images(client: TestClient, count: int, seed: int = 0) -> list[int]:
    files = [("files", (f"{i}.jpg", jpeg_bytes(seed=seed + i), "image/jpeg")) for i in range(count)]
    response = client.post("/images/upload", files=files)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


def create_batch(client: TestClient, name: str, image_ids: list[int]) -> dict:
    response = client.post("/batches/", json={"name": name, "image_ids": image_ids})
    assert response.status_code == 201, response.text
    return response.json()


def label(db: Session, batch_id: int, image_id: int, group: str, rank: int | None = None) -> None:
    db.execute(
        update(ImageBatchAssociation)
        .where(ImageBatchAssociation.batch_id == batch_id)
        .where(ImageBatchAssociation.image_id == image_id)
        .values(group_label=group, quality_rank=rank)
    )
    db.commit()


def member_ids(batch: dict) -> list[int]:
    return [a["image"]["id"] for a in batch["image_associations"]]


def test_create_and_get_batch(client: TestClient) -> None:
    ids = upload_images(client, 3)
    batch = create_batch(client, "Wedding", ids)

    assert batch["batch_name"] == "Wedding"
    assert batch["status"] == "pending"
    assert batch["image_count"] == 3
    assert batch["embedded_count"] == 3
    assert sorted(member_ids(batch)) == ids
    assert client.get(f"/batches/{batch['id']}").json() == batch


def test_create_batch_with_unknown_image_is_404(client: TestClient) -> None:
    ids = upload_images(client, 1)
    response = client.post("/batches/", json={"name": "x", "image_ids": [ids[0], 424242]})
    assert response.status_code == 404
    assert response.json()["detail"] == "One or more image IDs not found."
    assert client.get("/batches/").json() == []


@pytest.mark.parametrize(
    "body",
    [{"name": "", "image_ids": []}, {"name": "   "}, {"name": "x" * 256}, {"image_ids": [1]}],
)
def test_create_batch_validates_name(client: TestClient, body: dict) -> None:
    response = client.post("/batches/", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_rename_batch(client: TestClient) -> None:
    batch = create_batch(client, "old", [])
    response = client.put(f"/batches/{batch['id']}", json={"name": "  New name  "})
    assert response.status_code == 200
    assert response.json()["batch_name"] == "New name"
    assert client.put(f"/batches/{batch['id']}", json={"name": "y" * 256}).status_code == 422
    assert client.put("/batches/999999", json={"name": "z"}).status_code == 404


def test_delete_batch_keeps_images(client: TestClient) -> None:
    ids = upload_images(client, 2)
    batch = create_batch(client, "temp", ids)

    response = client.delete(f"/batches/{batch['id']}")
    assert response.status_code == 200
    assert response.json() == {"message": f"Batch {batch['id']} deleted."}
    assert client.get(f"/batches/{batch['id']}").status_code == 404
    assert [i["id"] for i in client.get("/images/").json()] == ids
    assert client.delete(f"/batches/{batch['id']}").status_code == 404


def test_add_images_keeps_existing_labels(client: TestClient, db: Session) -> None:
    ids = upload_images(client, 3)
    batch = create_batch(client, "b", ids[:2])
    label(db, batch["id"], ids[0], "Group 1", 1)

    response = client.post(f"/batches/{batch['id']}/images", json={"image_ids": ids[1:]})
    assert response.status_code == 200
    labels = {a["image"]["id"]: a["group_label"] for a in response.json()["image_associations"]}
    assert labels == {ids[0]: "Group 1", ids[1]: None, ids[2]: None}
    # The answer is the batch's page, as GET answers it.
    assert response.json() == client.get(f"/batches/{batch['id']}").json()


def test_add_unknown_images_is_404(client: TestClient) -> None:
    batch = create_batch(client, "b", [])
    response = client.post(f"/batches/{batch['id']}/images", json={"image_ids": [999999]})
    assert response.status_code == 404
    assert client.post("/batches/999999/images", json={"image_ids": [1]}).status_code == 404
    assert client.post(f"/batches/{batch['id']}/images", json={"image_ids": []}).status_code == 422


def test_remove_images_keeps_other_labels(client: TestClient, db: Session) -> None:
    ids = upload_images(client, 3)
    batch = create_batch(client, "b", ids)
    label(db, batch["id"], ids[0], "Group 1", 1)
    label(db, batch["id"], ids[2], "Group 2", 1)

    response = client.request(
        "DELETE", f"/batches/{batch['id']}/images", json={"image_ids": [ids[1]]}
    )
    assert response.status_code == 200
    labels = {a["image"]["id"]: a["group_label"] for a in response.json()["image_associations"]}
    assert labels == {ids[0]: "Group 1", ids[2]: "Group 2"}
    assert [i["id"] for i in client.get("/images/").json()] == ids


def test_deleting_an_image_removes_it_from_its_batches(client: TestClient) -> None:
    ids = upload_images(client, 2)
    batch = create_batch(client, "b", ids)

    assert client.delete(f"/images/{ids[0]}").status_code == 200
    assert member_ids(client.get(f"/batches/{batch['id']}").json()) == [ids[1]]


def test_upload_and_add_puts_new_and_duplicate_images_in_the_batch(client: TestClient) -> None:
    [existing] = upload_images(client, 1, seed=50)
    batch = create_batch(client, "b", [])

    files = [
        ("files", ("dup.jpg", jpeg_bytes(seed=50), "image/jpeg")),
        ("files", ("new.jpg", jpeg_bytes(seed=51), "image/jpeg")),
    ]
    response = client.post(f"/batches/{batch['id']}/upload-and-add", files=files)
    assert response.status_code == 200, response.text
    members = member_ids(response.json())
    assert existing in members
    assert len(members) == 2
    # The new image is embedded after the response: progress shows it.
    assert response.json()["embedded_count"] == 1
    assert client.get(f"/batches/{batch['id']}").json()["embedded_count"] == 2


def test_upload_and_add_to_unknown_batch_stores_nothing(client: TestClient) -> None:
    files = [("files", ("a.jpg", jpeg_bytes(seed=52), "image/jpeg"))]
    assert client.post("/batches/999999/upload-and-add", files=files).status_code == 404
    assert client.get("/images/").json() == []


def test_associations_are_ordered_by_group_then_rank_then_id(
    client: TestClient, db: Session
) -> None:
    ids = upload_images(client, 6)
    batch = create_batch(client, "b", ids)
    for image_id, group, rank in [
        (ids[0], "Ungrouped", 1),
        (ids[1], "Group 10", 1),
        (ids[2], "Group 2", 2),
        (ids[3], "Group 2", 1),
        (ids[4], "Group 1", 1),
    ]:
        label(db, batch["id"], image_id, group, rank)

    body = client.get(f"/batches/{batch['id']}").json()
    order = [(a["group_label"], a["image"]["id"]) for a in body["image_associations"]]
    assert order == [
        ("Group 1", ids[4]),
        ("Group 2", ids[3]),
        ("Group 2", ids[2]),
        ("Group 10", ids[1]),
        ("Ungrouped", ids[0]),
        (None, ids[5]),
    ]


@contextmanager
def count_statements(connection: Connection) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


def test_batch_list_uses_a_fixed_number_of_queries(
    client: TestClient, connection: Connection
) -> None:
    ids = upload_images(client, 6)
    create_batch(client, "one", ids[:1])

    with count_statements(connection) as few:
        assert len(client.get("/batches/").json()) == 1

    for n in range(5):
        create_batch(client, f"more {n}", ids)
    with count_statements(connection) as many:
        body = client.get("/batches/").json()
    assert len(body) == 6
    assert sum(b["image_count"] for b in body) == 31
    assert len(many) == len(few) <= 4  # the published model, batches, members, total


def test_unknown_batch_is_404(client: TestClient) -> None:
    response = client.get("/batches/999999")
    assert response.status_code == 404
    assert response.json() == {"detail": "Batch 999999 not found."}
