"""The /images endpoints through the real app, with real files and a real database."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from config import Settings
from database.models import Image as ImageRow
from processing.decode_gate import MB, decode_gate
from processing.feature_extraction import ManagedEmbedder
from tests.factories import (
    blank_png,
    build_exif,
    encode,
    gradient_image,
    jpeg_bytes,
    png_bytes,
    tiff_bytes,
)

ORIENTATION = 0x0112


def upload(client: TestClient, *files: tuple[str, bytes], path: str = "/images/upload"):
    return client.post(path, files=[("files", (name, data, "image/jpeg")) for name, data in files])


def stored_files(root: Path) -> dict[str, list[str]]:
    return {
        folder: sorted(p.name for p in (root / folder).iterdir())
        for folder in ("images", "thumbnails", "incoming")
    }


def test_upload_stores_file_row_thumbnail_and_embedding(
    client: TestClient, storage_root: Path, db: Session
) -> None:
    data = jpeg_bytes((320, 200), seed=1)
    response = upload(client, ("holiday.jpg", data))

    assert response.status_code == 200, response.text
    [item] = response.json()
    assert item["original_filename"] == "holiday.jpg"
    assert item["is_duplicate"] is False
    assert item["message"] is None
    assert item["file_path"] == f"images/{item['filename']}"
    assert item["filename"].endswith(".jpg")
    assert (storage_root / item["file_path"]).read_bytes() == data

    row = db.get(ImageRow, item["id"])
    assert row is not None
    assert row.image_hash == hashlib.sha256(data).hexdigest()
    assert row.file_size == len(data)
    assert row.mime_type == "image/jpeg"
    # The background work ran after the commit: thumbnail and embedding are there.
    assert row.has_thumbnail is True
    assert row.embedding_model is not None
    assert stored_files(storage_root)["incoming"] == []

    listed = client.get("/images/").json()
    assert [i["id"] for i in listed] == [item["id"]]
    assert listed[0]["has_thumbnail"] is True
    assert listed[0]["has_embedding"] is True


def test_mime_type_comes_from_content_not_name(client: TestClient) -> None:
    response = upload(client, ("actually-a-png.jpg", png_bytes(seed=2)))
    [item] = response.json()
    assert item["filename"].endswith(".png")
    served = client.get(f"/images/{item['id']}")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == png_bytes(seed=2)


def test_upload_tiff_and_multiple_files(client: TestClient) -> None:
    response = upload(client, ("a.tif", tiff_bytes(seed=3)), ("b.jpg", jpeg_bytes(seed=4)))
    assert response.status_code == 200
    assert [i["filename"][-4:] for i in response.json()] == [".tif", ".jpg"]


def test_duplicate_upload_answers_existing_image(client: TestClient, storage_root: Path) -> None:
    data = jpeg_bytes(seed=5)
    first = upload(client, ("one.jpg", data)).json()[0]
    second = upload(client, ("again.jpg", data)).json()[0]

    assert second["id"] == first["id"]
    assert second["is_duplicate"] is True
    assert second["message"] == f"Duplicate of existing image ID: {first['id']}"
    assert second["original_filename"] == "one.jpg"
    assert len(client.get("/images/").json()) == 1
    assert stored_files(storage_root)["images"] == [first["filename"]]


def test_same_bytes_twice_in_one_request(client: TestClient) -> None:
    data = jpeg_bytes(seed=6)
    items = upload(client, ("a.jpg", data), ("b.jpg", data)).json()
    assert [i["is_duplicate"] for i in items] == [False, True]
    assert items[0]["id"] == items[1]["id"]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.jpg", b"this is not a picture at all", "not an image"),
        ("empty.jpg", b"", "file is empty"),
        ("cut.jpg", jpeg_bytes((256, 256), seed=7)[:600], "could not be decoded"),
    ],
)
def test_bad_files_are_rejected_and_nothing_is_stored(
    client: TestClient, storage_root: Path, name: str, data: bytes, reason: str
) -> None:
    response = upload(client, (name, data))

    assert response.status_code == 400
    body = response.json()
    assert name in body["detail"]
    assert reason in body["detail"]
    assert body["rejected"] == [{"filename": name, "reason": body["rejected"][0]["reason"]}]
    assert str(storage_root) not in response.text
    assert client.get("/images/").json() == []
    assert stored_files(storage_root) == {"images": [], "thumbnails": [], "incoming": []}


def test_partly_bad_upload_keeps_the_good_file_and_reports_the_bad_one(
    client: TestClient,
) -> None:
    response = upload(client, ("good.jpg", jpeg_bytes(seed=8)), ("bad.jpg", b"nope"))
    assert response.status_code == 200
    assert [i["original_filename"] for i in response.json()] == ["good.jpg"]
    assert "bad.jpg" in response.headers["x-rejected-files"]


def test_oversize_file_is_rejected_with_413(
    settings: Settings,
    session_factory: sessionmaker[Session],
    tiny_embedder: ManagedEmbedder,
    storage_root: Path,
) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 2000})
    app = create_app(
        small, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    with TestClient(app) as client:
        response = upload(client, ("big.jpg", jpeg_bytes((400, 400), seed=9)))
    assert response.status_code == 413
    assert "larger than the limit of 2000 bytes" in response.json()["detail"]
    assert stored_files(storage_root) == {"images": [], "thumbnails": [], "incoming": []}


def test_decompression_bomb_is_rejected(
    settings: Settings,
    session_factory: sessionmaker[Session],
    tiny_embedder: ManagedEmbedder,
) -> None:
    limited = settings.model_copy(update={"max_image_pixels": 100 * 100})
    app = create_app(
        limited, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    with TestClient(app) as client:
        response = upload(client, ("huge.png", png_bytes((300, 300), seed=10)))
    assert response.status_code == 400
    assert "more pixels than the limit of 10000" in response.json()["detail"]


def test_an_image_whose_pixels_exceed_the_decode_budget_is_413(
    settings: Settings,
    session_factory: sessionmaker[Session],
    tiny_embedder: ManagedEmbedder,
    storage_root: Path,
) -> None:
    # 12 MP of 16-bit grey in a 20 KB file: 23 MB decoded, over a 16 MB budget.
    budget = settings.model_copy(update={"decode_memory_mb": 16})
    app = create_app(
        budget, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    with TestClient(app) as client:
        response = upload(client, ("deep.png", blank_png(4000, 3000, bit_depth=16)))
    assert response.status_code == 413
    assert "decode budget of 16 MB" in response.json()["detail"]
    assert stored_files(storage_root) == {"images": [], "thumbnails": [], "incoming": []}
    assert decode_gate().budget_bytes == 640 * MB  # the app's gate went with the app


def test_upload_without_files_is_422(client: TestClient) -> None:
    response = client.post("/images/upload")
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_original_filename_is_cleaned(client: TestClient) -> None:
    [item] = upload(client, ("../../etc/passwd.jpg", jpeg_bytes(seed=11))).json()
    assert item["original_filename"] == "passwd.jpg"
    assert ".." not in item["file_path"]


def test_thumbnail_keeps_aspect_ratio_and_applies_orientation(client: TestClient) -> None:
    # Stored 800x400 with orientation 6 (rotate 90° clockwise to display): shown 400x800.
    data = jpeg_bytes((800, 400), seed=12, exif=build_exif({ORIENTATION: 6}))
    [item] = upload(client, ("rotated.jpg", data)).json()

    response = client.get(f"/images/thumbnail/{item['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(response.content))
    assert thumb.format == "JPEG"
    assert thumb.size == (256, 512)

    meta = client.get(f"/images/metadata/{item['id']}").json()
    assert (meta["width"], meta["height"], meta["orientation"]) == (800, 400, 6)


@pytest.mark.parametrize("mode", ["CMYK", "P", "RGBA", "I;16", "L"])
def test_thumbnail_from_any_mode(client: TestClient, mode: str) -> None:
    img = gradient_image((300, 150), seed=13)
    converted = img.convert("I;16") if mode == "I;16" else img.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    [item] = upload(client, (f"pic.{fmt.lower()}", encode(converted, fmt))).json()

    response = client.get(f"/images/thumbnail/{item['id']}")
    assert response.status_code == 200
    thumb = Image.open(io.BytesIO(response.content))
    assert (thumb.mode, thumb.size) == ("RGB", (300, 150))


def test_large_thumbnail_is_bounded_by_setting(client: TestClient) -> None:
    [item] = upload(client, ("wide.jpg", jpeg_bytes((1600, 900), seed=14))).json()
    thumb = Image.open(io.BytesIO(client.get(f"/images/thumbnail/{item['id']}").content))
    assert thumb.size == (512, 288)


def test_metadata_of_an_exif_jpeg(client: TestClient) -> None:
    exif = build_exif(
        {0x010F: "Fujifilm", 0x0110: "X-T5"},
        exif_ifd={0x8827: 800, 0x9003: "2024:05:01 10:20:30", 0x9011: "+02:00", 0xA431: "5CA1"},
    )
    [item] = upload(client, ("exif.jpg", jpeg_bytes((120, 80), seed=15, exif=exif))).json()

    meta = client.get(f"/images/metadata/{item['id']}").json()
    assert meta["camera_make"] == "Fujifilm"
    assert meta["camera_model"] == "X-T5"
    assert meta["camera_serial"] == "5CA1"  # BodySerialNumber: tells two bodies apart
    assert meta["iso"] == 800
    # The instant, written in the photographer's offset, and the wall clock the camera showed.
    assert meta["shot_at"] == "2024-05-01T10:20:30+02:00"
    shot_at = datetime.fromisoformat(meta["shot_at"])
    assert shot_at == datetime(2024, 5, 1, 10, 20, 30, tzinfo=timezone(timedelta(hours=2)))
    assert (meta["shot_at_local"], meta["shot_at_offset"]) == ("2024-05-01T10:20:30", "+02:00")
    assert (meta["width"], meta["height"]) == (120, 80)


def test_capture_time_without_an_offset_says_so(client: TestClient) -> None:
    exif = build_exif(exif_ifd={0x9003: "2024:05:01 10:20:30"})
    [item] = upload(client, ("plain.jpg", jpeg_bytes((120, 80), seed=16, exif=exif))).json()

    meta = client.get(f"/images/metadata/{item['id']}").json()
    # Most cameras record no offset: the wall clock is exact, the offset is unknown (null).
    assert (meta["shot_at_local"], meta["shot_at_offset"]) == ("2024-05-01T10:20:30", None)
    assert meta["shot_at"] == "2024-05-01T10:20:30Z"


def test_list_pagination(client: TestClient) -> None:
    ids = [upload(client, (f"{i}.jpg", jpeg_bytes(seed=100 + i))).json()[0]["id"] for i in range(5)]

    page = client.get("/images/", params={"offset": 1, "limit": 2})
    assert page.status_code == 200
    assert [i["id"] for i in page.json()] == ids[1:3]
    assert page.headers["x-total-count"] == "5"
    assert client.get("/images/", params={"limit": 0}).status_code == 422
    assert client.get("/images/", params={"offset": -1}).status_code == 422


def test_delete_removes_row_and_files(client: TestClient, storage_root: Path) -> None:
    [item] = upload(client, ("gone.jpg", jpeg_bytes(seed=16))).json()
    assert stored_files(storage_root)["thumbnails"]

    response = client.delete(f"/images/{item['id']}")
    assert response.status_code == 200
    assert response.json() == {"message": f"Image {item['id']} deleted."}
    assert stored_files(storage_root) == {"images": [], "thumbnails": [], "incoming": []}
    assert client.get(f"/images/{item['id']}").status_code == 404
    assert client.delete(f"/images/{item['id']}").status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/images/999999", "/images/thumbnail/999999", "/images/metadata/999999"],
)
def test_unknown_image_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Image 999999 not found."}


def test_non_integer_id_is_422(client: TestClient) -> None:
    assert client.get("/images/metadata/abc").status_code == 422


def test_failed_commit_leaves_no_file(
    settings: Settings,
    session_factory: sessionmaker[Session],
    tiny_embedder: ManagedEmbedder,
    storage_root: Path,
) -> None:
    def refuse(_session: Session) -> None:
        raise RuntimeError("the database went away at commit time")

    event.listen(session_factory, "before_commit", refuse)
    app = create_app(
        settings, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        # Two files: the second one's SAVEPOINT must not move the first into place.
        response = upload(
            client, ("lost.jpg", jpeg_bytes(seed=17)), ("too.jpg", jpeg_bytes(seed=18))
        )
    event.remove(session_factory, "before_commit", refuse)

    assert response.status_code == 500
    assert stored_files(storage_root) == {"images": [], "thumbnails": [], "incoming": []}
    with session_factory() as session:
        assert session.scalars(select(ImageRow)).all() == []
