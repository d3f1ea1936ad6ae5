"""Fast batch reads: the batch page and the batch list, built from plain rows and encoded once,
are what the validated models would have said, in a fixed number of queries; reads run in
read-only transactions that never take SQLite's write lock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import get_type_hints

import pytest
from fastapi import Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, event, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from api import cluster_routes, image_routes
from api.deps import get_read_session, get_session
from api.schemas import BatchResponse, GroupSummary, ImageAssociation, Presenter
from database.database import create_read_session_factory, create_session_factory
from database.models import Image, ImageBatchAssociation
from database.readiness import is_keeper
from services import batch_service
from tests.api.helpers import new_batch, upload
from tests.factories import jpeg_bytes


@contextmanager
def counted_statements(connection: Connection) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "SAVEPOINT" not in statement:  # the test transaction's own bookkeeping
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


def shoot(client: TestClient, count: int, seed: int) -> list[int]:
    return upload(
        client, [(f"{seed + i}.jpg", jpeg_bytes((64, 48), seed=seed + i)) for i in range(count)]
    )


def grouped_batch(client: TestClient, db: Session, ids: list[int]) -> int:
    """A batch with two groups, ranks, ungrouped and unlabelled members."""
    batch_id = new_batch(client, ids)
    labels = ["Group 2", "Group 10", "Keepers", "Group 2", "Ungrouped", "Group 10", None]
    labels += ["Group 123456789012345678901234567890", "Group 2a"]
    for n, image_id in enumerate(ids):
        db.execute(
            update(ImageBatchAssociation)
            .where(ImageBatchAssociation.batch_id == batch_id)
            .where(ImageBatchAssociation.image_id == image_id)
            .values(group_label=labels[n % len(labels)], quality_rank=None if n % 3 else n + 1)
        )
    db.commit()
    return batch_id


def validated(db: Session, present: Presenter, batch_id: int) -> dict:
    """The batch as the validated models say it: ORM objects through ImageResponse."""
    batch = batch_service.get_batch(db, batch_id)
    associations = [
        ImageAssociation(
            image=present.image(a.image),
            group_label=a.group_label,
            quality_rank=a.quality_rank,
            is_keeper=is_keeper(a),
        )
        for a in batch.image_associations
    ]
    sizes: dict[str, int] = {}
    for a in associations:
        if a.group_label is not None and a.group_label != "Ungrouped":
            sizes[a.group_label] = sizes.get(a.group_label, 0) + 1
    response = BatchResponse(
        id=batch.id,
        batch_name=batch.batch_name,
        status=batch.status,  # type: ignore[arg-type]
        parameters=batch.parameters,
        error=batch.error,
        created_at=batch.created_at,
        updated_at=batch.updated_at,
        image_count=len(associations),
        embedded_count=sum(a.image.has_embedding for a in associations),
        image_associations=associations,
        preview_image_ids=[a.image.id for a in associations[:4]],
        groups=[GroupSummary(label=label, size=size) for label, size in sizes.items()],
    ).model_dump_json()
    return json.loads(response)  # type: ignore[no-any-return]


def test_image_list_equals_the_validated_models(client: TestClient, db: Session) -> None:
    ids = shoot(client, 6, seed=20)
    db.execute(update(Image).where(Image.id == ids[1]).values(embedding_model="another-model"))
    db.execute(update(Image).where(Image.id == ids[2]).values(quality_score=float("nan")))
    face = {"x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4, "eyes": "open", "sharpness": 0.5}
    faces = [{**face, "eye_sharpness": None}]  # as the judge stores them: every field
    db.execute(update(Image).where(Image.id == ids[3]).values(faces=faces, face_count=1))
    db.commit()
    present = Presenter(active_model=client.get("/health").json()["model"]["active_model"])

    listed = client.get("/images/", params={"offset": 1, "limit": 4})

    assert listed.status_code == 200
    assert listed.headers["X-Total-Count"] == "6"
    images = db.scalars(select(Image).where(Image.id.in_(ids[1:5])).order_by(Image.id))
    assert listed.json() == [json.loads(present.image(image).model_dump_json()) for image in images]


def test_batch_page_equals_the_validated_models(client: TestClient, db: Session) -> None:
    ids = shoot(client, 10, seed=0)
    batch_id = grouped_batch(client, db, ids)
    db.execute(update(Image).where(Image.id == ids[1]).values(embedding_model="another-model"))
    db.execute(update(Image).where(Image.id == ids[2]).values(quality_score=float("nan")))
    db.commit()
    present = Presenter(active_model=client.get("/health").json()["model"]["active_model"])

    page = client.get(f"/batches/{batch_id}")

    assert page.status_code == 200
    assert page.headers["content-type"] == "application/json"
    body = page.json()
    assert body == validated(db, present, batch_id)
    assert BatchResponse.model_validate(body).embedded_count == 9
    labels = [a["group_label"] for a in body["image_associations"]]
    order = ["Group 2", "Group 10", "Group 123456789012345678901234567890"]
    order += ["Group 2a", "Keepers", "Ungrouped", None]
    assert labels == sorted(labels, key=order.index)
    # A write answers with the same page (built from the ORM objects it changed).
    renamed = client.put(f"/batches/{batch_id}", json={"name": "shoot"}).json()
    assert {**renamed, "updated_at": None} == {
        **client.get(f"/batches/{batch_id}").json(),
        "updated_at": None,
    }


def test_batch_page_and_list_use_a_fixed_number_of_queries(
    client: TestClient, db: Session, connection: Connection
) -> None:
    small = new_batch(client, shoot(client, 2, seed=100))
    large = new_batch(client, shoot(client, 12, seed=200))

    counts = []
    for batch_id in (small, large):
        with counted_statements(connection) as statements:
            assert client.get(f"/batches/{batch_id}").status_code == 200
        counts.append(len(statements))
    lists = []
    for more in (0, 5):
        if more:
            new_batch(client, shoot(client, more, seed=300))
        for params in ({}, {"include": "summary"}):
            with counted_statements(connection) as statements:
                assert len(client.get("/batches/", params=params).json()) == 2 + bool(more)
            lists.append(len(statements))

    # Each request also reads the published model once (the Presenter's "has an embedding").
    assert counts[0] == counts[1] <= 3
    assert lists[0] == lists[2] <= 4  # full list: model, batches, members, total
    assert lists[1] == lists[3] <= 6  # summary: model, batches, counts, group sizes, firsts, total


def test_batch_list_summary_and_pagination(client: TestClient, db: Session) -> None:
    first = grouped_batch(client, db, shoot(client, 9, seed=400))
    second = new_batch(client, shoot(client, 3, seed=500))
    third = new_batch(client, shoot(client, 1, seed=600))

    full = client.get("/batches/")
    summary = client.get("/batches/", params={"include": "summary"})
    paged = client.get("/batches/", params={"include": "summary", "offset": 1, "limit": 1})

    assert full.headers["X-Total-Count"] == summary.headers["X-Total-Count"] == "3"
    assert [b["id"] for b in full.json()] == [first, second, third]
    for whole, short in zip(full.json(), summary.json(), strict=True):
        assert whole == client.get(f"/batches/{whole['id']}").json()
        assert short == {**whole, "image_associations": [], "groups": []}
        assert short["preview_image_ids"] == [
            a["image"]["id"] for a in whole["image_associations"][:4]
        ]
    assert summary.json()[0]["image_count"] == 9
    assert [b["id"] for b in paged.json()] == [second]
    assert paged.headers["X-Total-Count"] == "3"
    assert client.get("/batches/", params={"offset": 5}).json() == []
    assert client.get("/batches/", params={"include": "everything"}).status_code == 422


def test_read_sessions_begin_deferred_and_refuse_writes(engine: Engine, on_sqlite: bool) -> None:
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with create_read_session_factory(engine)() as session:
            session.execute(text("SELECT 1"))
            if not on_sqlite:
                assert session.execute(text("SHOW transaction_read_only")).scalar() == "on"
                with pytest.raises(DBAPIError, match="read-only transaction"):
                    session.execute(
                        insert(Image).values(
                            filename="x",
                            original_filename="x",
                            file_path="x",
                            image_hash="x",
                            file_size=1,
                            mime_type="image/jpeg",
                        )
                    )
        with create_session_factory(engine)() as session:
            session.execute(text("SELECT 1"))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    if on_sqlite:
        assert statements == ["BEGIN", "SELECT 1", "BEGIN IMMEDIATE", "SELECT 1"]


def test_reads_answer_while_another_transaction_holds_the_write_lock(
    live_client: TestClient, clean_database: Engine
) -> None:
    ids = upload(live_client, [("a.jpg", jpeg_bytes(seed=1)), ("b.jpg", jpeg_bytes(seed=2))])
    batch_id = new_batch(live_client, ids)

    # A writer that holds SQLite's write lock (PostgreSQL: row locks) and has not committed.
    with clean_database.connect() as writer, writer.begin():
        writer.execute(update(Image).values(caption="being edited"))
        writer.execute(update(ImageBatchAssociation).values(group_label="Group 1"))
        answers = [
            live_client.get(path)
            for path in (
                "/images/",
                f"/batches/{batch_id}",
                "/batches/",
                "/health",
                f"/images/metadata/{ids[0]}",
                f"/batches/{batch_id}/export",
            )
        ]
        writer.rollback()

    assert [a.status_code for a in answers] == [200] * len(answers)
    assert {a["group_label"] for a in answers[1].json()["image_associations"]} == {None}


def test_summary_previews_follow_the_page_order(client: TestClient, db: Session) -> None:
    ids = shoot(client, 6, seed=700)
    batch_id = new_batch(client, ids)
    labels = [None, "Ungrouped", "Keepers", "Group 99999999999999999999", "Group 3", "Group 3a"]
    for image_id, group in zip(ids, labels, strict=True):
        db.execute(
            update(ImageBatchAssociation)
            .where(ImageBatchAssociation.image_id == image_id)
            .values(group_label=group)
        )
    db.commit()

    page = client.get(f"/batches/{batch_id}").json()
    (summary,) = client.get("/batches/", params={"include": "summary"}).json()

    page_labels = [a["group_label"] for a in page["image_associations"]]
    assert page_labels == ["Group 3", *labels[3:2:-1], "Group 3a", "Keepers", "Ungrouped", None]
    assert summary["preview_image_ids"] == [
        a["image"]["id"] for a in page["image_associations"][:4]
    ]


def _calls(dependant: Dependant) -> set[object]:
    return {dependant.call} | {c for d in dependant.dependencies for c in _calls(d)}


def test_routes_that_write_return_a_finished_response() -> None:
    """A write route's response must not be validated on the thread pool after the route: it
    holds the write lock until its commit, and every pool thread may be waiting for that lock."""
    routes = [*image_routes.router.routes, *cluster_routes.router.routes]
    writers = [
        route
        for route in routes
        if isinstance(route, APIRoute) and get_session in _calls(route.dependant)
    ]

    assert len(writers) >= 10
    for route in writers:
        returned = get_type_hints(route.endpoint)["return"]
        assert issubclass(returned, Response), f"{route.path} returns {returned}"
        assert get_read_session not in _calls(route.dependant)
