"""Strict input and what comes out of it (issue 18, items 7, 8, 9, 11): ids are JSON integers,
names and labels hold no control characters or non-characters (the published pattern and the
server agree), every sidecar is XML, 503 is documented everywhere, CSV keeps signed values."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import Any
from xml.etree import ElementTree

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from database.models import ImageBatchAssociation
from services.export_service import is_formula
from services.xmp_export import MAX_NAME_BYTES, Pick, sidecar_names
from tests.api.helpers import new_batch, upload
from tests.factories import jpeg_bytes


@pytest.mark.parametrize("bad_id", [True, "1", 1.5, None, [1], 2.0**60])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/batches/", lambda i: {"name": "x", "image_ids": [i]}),
        ("POST", "/batches/{batch}/images", lambda i: {"image_ids": [i]}),
        ("DELETE", "/batches/{batch}/images", lambda i: {"image_ids": [i]}),
        ("PUT", "/batches/{batch}/groups", lambda i: {"group_map": {"A": [i]}}),
    ],
)
def test_ids_in_a_body_are_json_integers_only(
    client: TestClient, bad_id: Any, method: str, path: str, body: Any
) -> None:
    ids = upload(client, [("a.jpg", jpeg_bytes(seed=1))])
    batch_id = new_batch(client, [])
    response = client.request(method, path.format(batch=batch_id), json=body(bad_id))
    assert response.status_code == 422, response.text
    # `true` was taken for image 1 before: nothing was added.
    assert client.get(f"/batches/{batch_id}").json()["image_count"] == 0
    # A JSON number without a fraction is an integer to JSON Schema (the published type).
    response = client.post(f"/batches/{batch_id}/images", json={"image_ids": [float(ids[0])]})
    assert response.status_code == 200, response.text
    assert response.json()["image_count"] == 1


REFUSED_NAMES = [
    "\u0085",
    "A\u0001",
    "tab\there",
    "line\n",
    "\x7f",
    "A\u009b",
    "A\ufffe",
    "\uffff",
    "A\ufdd0",
    "  \u3000 ",
    "",
]
ACCEPTED_NAMES = ["Wedding — ceremony", " padded ", "\ufeffBOM", "emoji 📷", "A|B <&>", "é"]


def _name_pattern(client: TestClient) -> str:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    pattern = schema["BatchCreate"]["properties"]["name"]["pattern"]
    label_pattern = schema["GroupsUpdate"]["properties"]["group_map"]["propertyNames"]["pattern"]
    assert pattern == label_pattern
    return str(pattern)


@pytest.mark.parametrize("name", REFUSED_NAMES + ACCEPTED_NAMES)
def test_names_and_labels_agree_with_the_published_pattern(client: TestClient, name: str) -> None:
    pattern = _name_pattern(client)
    # ECMAScript's reading (a JSON Schema validator's) and the server's (Python, whole string:
    # Python's `$` would also match before a final newline) agree on every case.
    ecma = jsonschema_rs.validator_for({"type": "string", "pattern": pattern}).is_valid(name)
    python = re.fullmatch(pattern, name) is not None
    assert ecma == python == (name in ACCEPTED_NAMES)

    created = client.post("/batches/", json={"name": name, "image_ids": []})
    assert created.status_code == (201 if ecma else 422), created.text
    ids = upload(client, [("a.jpg", jpeg_bytes(seed=2))])
    batch_id = new_batch(client, ids)
    renamed = client.put(f"/batches/{batch_id}", json={"name": name})
    assert renamed.status_code == (200 if ecma else 422), renamed.text
    grouped = client.put(f"/batches/{batch_id}/groups", json={"group_map": {name: ids}})
    assert grouped.status_code == (200 if ecma else 422), grouped.text
    if ecma:
        assert created.json()["batch_name"] == name.strip(" \u3000")


def _sidecars(client: TestClient, batch_id: int, **params: Any) -> dict[str, bytes]:
    response = client.get(f"/batches/{batch_id}/export", params={"format": "xmp", **params})
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_every_sidecar_is_xml_whatever_the_stored_label(client: TestClient, db: Session) -> None:
    # Labels stored before they were refused at the API (or written by hand) reach the writer.
    labels = ["A\u0001", "B\ufffe", "C\x1b[31m", "D\ufdd0\uffff", "E\u0085", "F <&> |"]
    ids = upload(client, [(f"{n}.jpg", jpeg_bytes(seed=10 + n)) for n in range(len(labels))])
    batch_id = new_batch(client, ids)
    for image_id, label in zip(ids, labels, strict=True):
        db.execute(
            update(ImageBatchAssociation)
            .where(ImageBatchAssociation.batch_id == batch_id)
            .where(ImageBatchAssociation.image_id == image_id)
            .values(group_label=label, quality_rank=1)
        )
    db.commit()

    sidecars = _sidecars(client, batch_id)

    assert len(sidecars) == len(labels)
    subjects = set()
    for packet in sidecars.values():
        root = ElementTree.fromstring(packet)  # raises on a sidecar that is not XML
        subjects |= {li.text for li in root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li")}
    assert {"A\ufffd", "B\ufffd", "C\ufffd[31m", "D\ufffd\ufffd", "E\u0085", "F <&> /"} <= subjects


def test_sidecar_names_fit_255_bytes_and_clash_after_normalisation(
    client: TestClient, tmp_path: Any
) -> None:
    composed, decomposed = "é" * 250 + ".jpg", "e\u0301" * 250 + ".JPG"
    names = sidecar_names(
        [Pick(1, composed, None, False), Pick(2, decomposed, None, False)], "full"
    )
    assert names[2].startswith("image-2/")
    for name in names.values():
        for part in name.split("/"):
            assert len(part.encode()) <= MAX_NAME_BYTES
        assert name.endswith(".xmp")

    ids = upload(client, [(composed, jpeg_bytes(seed=30)), (decomposed, jpeg_bytes(seed=31))])
    batch_id = new_batch(client, ids)
    response = client.get(f"/batches/{batch_id}/export", params={"format": "xmp"})
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        archive.extractall(tmp_path)  # "File name too long" before
        assert len(archive.namelist()) == 2


@pytest.mark.parametrize(
    ("text", "formula"),
    [
        ("-05:00", False),
        ("+02:00", False),
        ("-3.5", False),
        ("-1e-5", False),
        ("=1+2", True),
        ("=5", True),
        ("-2+3", True),
        ("+A1", True),
        ("@SUM(A1)", True),
        ("\t1", True),
        ("\r=1", True),
        ("IMG_0001.jpg", False),
    ],
)
def test_csv_guard_defuses_formulas_only(text: str, formula: bool) -> None:
    assert is_formula(text) is formula


def test_csv_keeps_a_negative_offset_and_defuses_a_formula_name(client: TestClient) -> None:
    ids = upload(client, [("=HYPERLINK(1).jpg", jpeg_bytes(seed=40))])
    batch_id = new_batch(client, ids)
    client.put(f"/batches/{batch_id}/groups", json={"group_map": {"-05:00": ids}})
    text = client.get(f"/batches/{batch_id}/export", params={"format": "csv"}).text
    (row,) = csv.DictReader(io.StringIO(text))
    assert row["group_label"] == "-05:00"
    assert row["original_filename"] == "'=HYPERLINK(1).jpg"


def test_every_answer_says_nosniff(client: TestClient) -> None:
    (image_id,) = upload(client, [("a.jpg", jpeg_bytes(seed=50))])
    for path in [f"/images/{image_id}", f"/images/thumbnail/{image_id}", "/images/999999", "/"]:
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path


def test_every_operation_documents_503_with_retry_after(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    operations = [op for item in paths.values() for op in item.values() if "operationId" in op]
    assert len(operations) >= 20
    for operation in operations:
        unavailable = operation["responses"].get("503")
        assert unavailable is not None, operation["operationId"]
        assert "Retry-After" in unavailable["headers"], operation["operationId"]


def test_every_operation_with_a_body_documents_408(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    with_body = [op for item in paths.values() for m, op in item.items() if m in {"post", "put"}]
    assert len(with_body) >= 10
    for operation in with_body:
        slow = operation["responses"].get("408")
        assert slow is not None, operation["operationId"]
        assert "BODY_MIN_BYTES_PER_SECOND" in slow["description"]
        schema = slow["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}


def test_published_id_bounds_are_json_schema_keywords(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for model, field in [("BatchCreate", "image_ids"), ("ImageIds", "image_ids")]:
        items = schemas[model]["properties"][field]["items"]
        assert items == {"type": "integer", "minimum": -(2**53 - 1), "maximum": 2**53 - 1}


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/images/1", {"GET", "DELETE"}),
        ("/batches/1", {"GET", "PUT", "DELETE"}),
        ("/batches/1/images", {"POST", "DELETE"}),
    ],
)
def test_a_405_lists_every_method_of_the_path(
    client: TestClient, path: str, allowed: set[str]
) -> None:
    response = client.request("PATCH", path)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == allowed
    assert response.json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS"])
def test_a_literal_path_is_not_read_as_an_image_id(client: TestClient, method: str) -> None:
    # GET /images/upload reached getImageFile and answered 422 "upload is not an integer", and
    # its 405 advertised DELETE and GET (schemathesis ST204/ST205): ids are digits in the path.
    response = client.request(method, "/images/upload")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
