"""Faces for close-ups through the API: each face's box, eyes and the eyes' own focus."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import ImageFilter

from tests.api.helpers import new_batch, upload
from tests.factories import ASTRONAUT_HEAD, encode, real_photo

# Real frames of a real blink, one person (tests/data/eyes/SOURCES.md).
EYES = Path(__file__).parent.parent / "data" / "eyes"


def metadata(client: TestClient, image_id: int) -> dict:
    response = client.get(f"/images/metadata/{image_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def overlap(box: dict, region: tuple[int, int, int, int], size: tuple[int, int]) -> float:
    """Intersection over union of an API face box (fractions) and a pixel region."""
    width, height = size
    left, top = box["x"] * width, box["y"] * height
    right, bottom = left + box["width"] * width, top + box["height"] * height
    inter_w = max(0.0, min(right, region[2]) - max(left, region[0]))
    inter_h = max(0.0, min(bottom, region[3]) - max(top, region[1]))
    inter = inter_w * inter_h
    area = (right - left) * (bottom - top) + (region[2] - region[0]) * (region[3] - region[1])
    return inter / (area - inter)


def inside(box: dict, region: tuple[int, int, int, int], size: tuple[int, int]) -> bool:
    width, height = size
    left, top = box["x"] * width, box["y"] * height
    right, bottom = left + box["width"] * width, top + box["height"] * height
    return region[0] <= left and region[1] <= top and right <= region[2] and bottom <= region[3]


def test_each_face_has_its_box_eyes_and_sharpnesses_in_every_answer(client: TestClient) -> None:
    files = [(n, (EYES / n).read_bytes()) for n in ("carphone-040.png", "carphone-042.png")]
    opened, closed = upload(client, files)
    batch_id = new_batch(client, [opened, closed])
    page = client.get(f"/batches/{batch_id}").json()
    in_page = {a["image"]["id"]: a["image"] for a in page["image_associations"]}
    listed = {i["id"]: i for i in client.get("/images/").json()}

    for image_id, state in ((opened, "open"), (closed, "closed")):
        face = metadata(client, image_id)["faces"]
        assert len(face) == 1
        (face,) = face
        assert face["eyes"] == state
        assert 0 <= face["x"] < face["x"] + face["width"] <= 1
        assert 0 <= face["y"] < face["y"] + face["height"] <= 1
        # The man's face fills the middle of the 176 x 144 frame.
        assert 0.2 < face["x"] + face["width"] / 2 < 0.8
        assert 0 < face["eye_sharpness"] <= 1
        assert 0 < face["sharpness"] <= 1
        # The same faces in the list, the batch page and beside them the image's summary.
        assert listed[image_id]["faces"] == in_page[image_id]["faces"] == [face]
        # One face: the image's eye sharpness is that face's (rounded to 3 decimals there).
        assert listed[image_id]["eye_sharpness"] == pytest.approx(face["eye_sharpness"], abs=5e-4)
        assert listed[image_id]["eyes"] == state

    rows = client.get(f"/batches/{batch_id}/export", params={"format": "json"}).json()
    assert {row["image_id"]: row["eye_sharpness"] for row in rows} == {
        opened: listed[opened]["eye_sharpness"],
        closed: listed[closed]["eye_sharpness"],
    }


def test_eye_sharpness_is_the_eyes_own_focus(client: TestClient) -> None:
    """Blurring only the band of the eyes costs eye sharpness far more than face sharpness."""
    astronaut = real_photo("astronaut.png")
    (sharp,) = upload(client, [("astronaut.png", encode(astronaut, "PNG"))])
    (face,) = metadata(client, sharp)["faces"]
    # The face inside her head and shoulders (ASTRONAUT_HEAD: the face found, grown by half).
    assert overlap(face, ASTRONAUT_HEAD, astronaut.size) > 0.2
    assert inside(face, ASTRONAUT_HEAD, astronaut.size)
    assert face["eyes"] == "open"

    width, height = astronaut.size
    left, top = round(face["x"] * width), round(face["y"] * height)
    w, h = round(face["width"] * width), round(face["height"] * height)
    band = (left, top + h // 5, left + w, top + h // 2)
    soft_eyes = astronaut.copy()
    soft_eyes.paste(astronaut.crop(band).filter(ImageFilter.GaussianBlur(2.5)), band[:2])
    (blurred,) = upload(client, [("soft-eyes.png", encode(soft_eyes, "PNG"))])
    (soft,) = metadata(client, blurred)["faces"]

    assert face["eye_sharpness"] > 0.8
    assert soft["eye_sharpness"] < face["eye_sharpness"] - 0.3
    eye_drop = face["eye_sharpness"] - soft["eye_sharpness"]
    assert eye_drop > 2 * (face["sharpness"] - soft["sharpness"])


def test_no_face_no_faces(client: TestClient) -> None:
    coffee = real_photo("coffee.png")
    (image_id,) = upload(client, [("coffee.png", encode(coffee.convert("RGB"), "PNG"))])
    answer = metadata(client, image_id)
    assert answer["face_count"] == 0
    assert answer["faces"] is None
    assert answer["eye_sharpness"] is None
