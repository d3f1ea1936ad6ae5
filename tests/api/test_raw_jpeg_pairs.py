"""A RAW+JPEG pair is one photo: one id, one tile, both files downloadable, deleted together,
named by every export. Real synthetic DNGs (tests/raw_factory.py) and real JPEGs with EXIF."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from services import import_service
from tests.api.helpers import new_batch
from tests.factories import build_exif, jpeg_bytes
from tests.raw_factory import DngSpec, dng_bytes

# EXIF tags: IFD0 Make, Model; Exif IFD DateTimeOriginal, SubSecTimeOriginal,
# OffsetTimeOriginal, BodySerialNumber.
_MAKE, _MODEL = 271, 272
_TAKEN, _SUBSEC, _OFFSET, _SERIAL = 36867, 37521, 36881, 42033
SPEC = DngSpec()  # Testmaker "Raw Body X1", serial SN-4242, 2024:05:06 07:08:09.25 +02:00


def camera_jpeg(
    taken: str = SPEC.shot_at,
    serial: str | None = SPEC.serial,
    model: str = SPEC.model,
    offset: str | None = SPEC.offset,
    seed: int = 7,
    size: tuple[int, int] = (900, 600),
) -> bytes:
    """The JPEG the camera writes beside its RAW (by default: the same frame as SPEC's DNG)."""
    exif_ifd: dict[int, str] = {_TAKEN: taken, _SUBSEC: "30"}
    if offset is not None:
        exif_ifd[_OFFSET] = offset
    if serial is not None:
        exif_ifd[_SERIAL] = serial
    exif = build_exif({_MAKE: SPEC.make, _MODEL: model}, exif_ifd)
    return jpeg_bytes(size, seed=seed, exif=exif)


def post(
    client: TestClient, files: list[tuple[str, bytes]], url: str = "/images/upload"
) -> httpx.Response:
    response = client.post(
        url, files=[("files", (name, data, "application/octet-stream")) for name, data in files]
    )
    assert response.status_code == 200, response.text
    return response


def stored(storage_root: Path) -> list[str]:
    return sorted(p.name for p in (storage_root / "images").glob("*"))


def test_a_pair_in_one_upload_is_one_image_with_two_files(
    client: TestClient, storage_root: Path
) -> None:
    raw, jpeg = dng_bytes(SPEC), camera_jpeg()
    items = post(client, [("IMG_0001.DNG", raw), ("IMG_0001.JPG", jpeg)]).json()

    assert len({item["id"] for item in items}) == 1
    [image] = client.get("/images/").json()
    # The JPEG is the main file (stored first whatever the order sent); the RAW its companion.
    assert image["original_filename"] == "IMG_0001.JPG"
    assert image["companion_original_filename"] == "IMG_0001.DNG"
    assert image["companion_mime_type"] == "image/x-adobe-dng"
    assert image["has_thumbnail"]
    assert image["has_embedding"]
    assert len(stored(storage_root)) == 2

    main = client.get(f"/images/{image['id']}")
    assert (main.content, main.headers["content-type"]) == (jpeg, "image/jpeg")
    for which in ("raw", "companion"):
        other = client.get(f"/images/{image['id']}", params={"which": which})
        assert other.content == raw
        assert other.headers["content-type"] == "image/x-adobe-dng"
        assert "IMG_0001.DNG" in other.headers["content-disposition"]
    thumbnail = client.get(f"/images/thumbnail/{image['id']}")
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        assert thumb.size == (512, 341)  # from the 900 x 600 JPEG, not the DNG's preview

    # Either file uploaded again is a duplicate of the one image.
    again = post(client, [("copy.dng", raw), ("copy.jpg", jpeg)]).json()
    assert [(i["id"], i["is_duplicate"]) for i in again] == [(image["id"], True)] * 2
    assert len(client.get("/images/").json()) == 1


def test_a_jpeg_after_its_raw_becomes_the_main_file_of_the_same_image(
    client: TestClient, storage_root: Path
) -> None:
    raw = dng_bytes(SPEC)
    # Square, unlike the DNG's 3:2 preview: the thumbnail tells which file it was made from.
    jpeg = camera_jpeg(size=(600, 600))
    [first] = post(client, [("IMG_0001.DNG", raw)]).json()
    raw_thumbnails = sorted((storage_root / "thumbnails").iterdir())
    assert len(raw_thumbnails) == 1  # the worker judged the RAW alone
    [second] = post(client, [("img_0001.jpg", jpeg)]).json()

    assert second["id"] == first["id"]
    assert not second["is_duplicate"]
    assert "second file of image" in second["message"]
    [image] = client.get("/images/").json()
    assert image["original_filename"] == "img_0001.jpg"
    assert image["companion_original_filename"] == "IMG_0001.DNG"
    # Processed again, from the JPEG: its thumbnail, a vector; the RAW's thumbnail is gone.
    assert image["has_thumbnail"]
    assert image["has_embedding"]
    thumbnail = client.get(f"/images/thumbnail/{image['id']}")
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        assert thumb.size == (512, 512)
    thumbnails = sorted((storage_root / "thumbnails").iterdir())
    assert len(thumbnails) == 1
    assert thumbnails != raw_thumbnails
    assert client.get(f"/images/{image['id']}").content == jpeg
    assert client.get(f"/images/{image['id']}", params={"which": "raw"}).content == raw
    assert client.get(f"/images/{image['id']}", params={"which": "companion"}).content == raw
    assert len(stored(storage_root)) == 2


def test_a_later_half_added_to_a_batch_lands_on_the_same_image(client: TestClient) -> None:
    [jpeg_item] = post(client, [("IMG_0001.JPG", camera_jpeg())]).json()
    batch_id = new_batch(client, [jpeg_item["id"]])
    post(client, [("IMG_0001.DNG", dng_bytes(SPEC))], f"/batches/{batch_id}/upload-and-add")
    batch = client.get(f"/batches/{batch_id}").json()
    assert [a["image"]["id"] for a in batch["image_associations"]] == [jpeg_item["id"]]
    assert batch["image_associations"][0]["image"]["companion_original_filename"] == "IMG_0001.DNG"


@pytest.mark.parametrize(
    ("name", "jpeg"),
    [
        ("another body", ("IMG_0001.JPG", camera_jpeg(serial="SN-9999"))),
        ("another model, no serial", ("IMG_0001.JPG", camera_jpeg(serial=None, model="X2"))),
        ("3 s apart", ("IMG_0001.JPG", camera_jpeg(taken="2024:05:06 07:08:12"))),
        ("another stem", ("IMG_0002.JPG", camera_jpeg())),
        ("no capture time", ("IMG_0001.JPG", jpeg_bytes((900, 600), seed=7))),
    ],
)
def test_files_that_are_not_one_photo_stay_two_images(
    client: TestClient, name: str, jpeg: tuple[str, bytes]
) -> None:
    items = post(client, [("IMG_0001.DNG", dng_bytes(SPEC)), jpeg]).json()
    assert len({item["id"] for item in items}) == 2, name
    assert all(i["companion_original_filename"] is None for i in client.get("/images/").json())


def test_two_jpegs_of_one_stem_and_instant_are_not_a_pair(client: TestClient) -> None:
    items = post(client, [("IMG_0001.JPG", camera_jpeg()), ("IMG_0001.jpeg", camera_jpeg(seed=8))])
    assert len({item["id"] for item in items.json()}) == 2


def test_a_pair_is_matched_on_the_wall_clock_when_one_file_lacks_the_offset(
    client: TestClient,
) -> None:
    # The RAW says 07:08:09 +02:00 (05:08:09 UTC); the JPEG 07:08:10 with no offset.
    items = post(
        client,
        [
            ("IMG_0001.DNG", dng_bytes(SPEC)),
            ("IMG_0001.JPG", camera_jpeg(taken="2024:05:06 07:08:10", offset=None)),
        ],
    ).json()
    assert len({item["id"] for item in items}) == 1


def test_deleting_a_pair_deletes_both_files(client: TestClient, storage_root: Path) -> None:
    items = post(
        client, [("IMG_0001.JPG", camera_jpeg()), ("IMG_0001.DNG", dng_bytes(SPEC))]
    ).json()
    image_id = items[0]["id"]
    assert len(stored(storage_root)) == 2
    assert client.delete(f"/images/{image_id}").status_code == 200
    assert stored(storage_root) == []
    assert list((storage_root / "thumbnails").glob("*")) == []
    assert client.get(f"/images/{image_id}", params={"which": "raw"}).status_code == 404


def test_a_single_file_has_no_companion_to_download(client: TestClient) -> None:
    [item] = post(client, [("IMG_0001.JPG", camera_jpeg())]).json()
    for which in ("raw", "companion"):
        response = client.get(f"/images/{item['id']}", params={"which": which})
        assert response.status_code == 404
        assert "no RAW" in response.json()["detail"] or "one file" in response.json()["detail"]
    assert client.get(f"/images/{item['id']}", params={"which": "both"}).status_code == 422


def _paired_batch(client: TestClient) -> tuple[int, int]:
    items = post(
        client, [("IMG_0001.DNG", dng_bytes(SPEC)), ("IMG_0001.JPG", camera_jpeg())]
    ).json()
    [single] = post(
        client, [("IMG_0002.JPG", camera_jpeg(seed=9, taken="2024:05:06 07:09:00"))]
    ).json()
    return new_batch(client, [items[0]["id"], single["id"]]), items[0]["id"]


def test_csv_and_json_exports_name_both_files(client: TestClient) -> None:
    batch_id, image_id = _paired_batch(client)
    rows = client.get(f"/batches/{batch_id}/export", params={"format": "json"}).json()
    by_id = {row["image_id"]: row for row in rows}
    assert by_id[image_id]["original_filename"] == "IMG_0001.JPG"
    assert by_id[image_id]["companion_original_filename"] == "IMG_0001.DNG"
    assert [row["companion_original_filename"] for row in rows].count(None) == 1

    text = client.get(f"/batches/{batch_id}/export", params={"format": "csv"}).text
    csv_rows = {int(r["image_id"]): r for r in csv.DictReader(io.StringIO(text))}
    assert csv_rows[image_id]["companion_original_filename"] == "IMG_0001.DNG"


def _zip_names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return sorted(archive.namelist())


def test_xmp_sidecars_are_named_for_the_raw_per_editor(client: TestClient) -> None:
    batch_id, _image_id = _paired_batch(client)
    url = f"/batches/{batch_id}/export"
    darktable = _zip_names(client.get(url, params={"format": "xmp", "editor": "darktable"}))
    assert darktable == ["IMG_0001.DNG.xmp", "IMG_0001.JPG.xmp", "IMG_0002.JPG.xmp"]
    lightroom = _zip_names(client.get(url, params={"format": "xmp", "editor": "lightroom"}))
    assert lightroom == ["IMG_0001.xmp", "IMG_0002.xmp"]  # one name serves both files


def test_the_embedded_export_copies_the_jpeg_and_writes_the_raws_sidecar(
    client: TestClient,
) -> None:
    batch_id, _image_id = _paired_batch(client)
    url = f"/batches/{batch_id}/export"
    names = _zip_names(
        client.get(url, params={"format": "xmp", "embed": True, "editor": "darktable"})
    )
    # The DNG takes an embedded packet too (Lightroom reads XMP inside DNG, not a sidecar).
    assert names == ["IMG_0001.DNG", "IMG_0001.JPG", "IMG_0002.JPG"]


def test_a_pair_imported_in_place_is_one_image_and_stays_on_the_card(
    importing_client: TestClient,
    import_root: Path,
    storage_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = importing_client
    # One file per chunk: the RAW (first by name) is indexed before its JPEG arrives.
    monkeypatch.setattr(import_service, "CHUNK", 1)
    folder = import_root / "card" / "DCIM" / "100TEST"
    folder.mkdir(parents=True)
    files = {
        "IMG_0001.DNG": dng_bytes(SPEC),
        "IMG_0001.JPG": camera_jpeg(),
        "IMG_0002.DNG": dng_bytes(DngSpec(seed=3, shot_at="2024:05:06 07:09:00")),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)

    progress = client.post("/imports", json={"path": "card", "batch_name": "card"}).json()
    progress = client.get(f"/imports/{progress['id']}").json()
    assert progress["status"] == "complete"
    assert (progress["done"], progress["failed"], progress["duplicates"]) == (3, 0, 0)
    batch = client.get(f"/batches/{progress['batch_id']}").json()
    images = {a["image"]["original_filename"]: a["image"] for a in batch["image_associations"]}
    # The JPEG, indexed after its RAW, took the RAW's place as the main file.
    assert set(images) == {"IMG_0001.JPG", "IMG_0002.DNG"}
    pair = images["IMG_0001.JPG"]
    assert pair["companion_original_filename"] == "IMG_0001.DNG"
    assert pair["has_thumbnail"]
    assert pair["has_embedding"]
    raw = client.get(f"/images/{pair['id']}", params={"which": "raw"})
    assert raw.content == files["IMG_0001.DNG"]
    assert len(list((storage_root / "thumbnails").iterdir())) == 2
    assert not list((storage_root / "images").iterdir())  # no byte copied

    assert client.delete(f"/images/{pair['id']}").status_code == 200
    # The photographer's files stay where they are.
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files


def test_a_pair_in_one_import_chunk_keeps_the_jpeg_as_main(
    importing_client: TestClient, import_root: Path
) -> None:
    folder = import_root / "card"
    folder.mkdir()
    (folder / "IMG_0001.DNG").write_bytes(dng_bytes(SPEC))
    (folder / "IMG_0001.JPG").write_bytes(camera_jpeg())
    progress = importing_client.post("/imports", json={"path": "card", "batch_name": "c"}).json()
    batch = importing_client.get(f"/batches/{progress['batch_id']}").json()
    [association] = batch["image_associations"]
    assert association["image"]["original_filename"] == "IMG_0001.JPG"
    assert association["image"]["companion_original_filename"] == "IMG_0001.DNG"


def _rating(sidecar: Path) -> str | None:
    """xmp:Rating of a sidecar, read as XML."""
    tree = ElementTree.parse(sidecar)
    return tree.findtext(".//{http://ns.adobe.com/xap/1.0/}Rating")


def test_sidecars_beside_an_imported_pair_cover_both_files(
    importing_client: TestClient, import_root: Path
) -> None:
    client = importing_client
    folder = import_root / "card"
    folder.mkdir()
    (folder / "IMG_0001.DNG").write_bytes(dng_bytes(SPEC))
    (folder / "IMG_0001.JPG").write_bytes(camera_jpeg())
    progress = client.post("/imports", json={"path": "card", "batch_name": "c"}).json()
    batch = client.get(f"/batches/{progress['batch_id']}").json()
    [association] = batch["image_associations"]
    reject = {"image_ids": [association["image"]["id"]], "pick": "reject"}
    assert client.put(f"/batches/{batch['id']}/decisions", json=reject).status_code == 200
    url = f"/imports/{progress['id']}/sidecars"

    darktable = client.post(url, params={"editor": "darktable"}).json()
    assert (darktable["written"], darktable["skipped"]) == (2, [])
    assert _rating(folder / "IMG_0001.DNG.xmp") == "-1"  # the RAW too is rejected in darktable
    assert _rating(folder / "IMG_0001.JPG.xmp") == "-1"
    lightroom = client.post(url, params={"editor": "lightroom"}).json()
    assert (lightroom["written"], lightroom["skipped"]) == (1, [])  # one name for both
    assert _rating(folder / "IMG_0001.xmp") == "-1"


def test_a_companion_gone_from_the_card_is_reported_missing(
    importing_client: TestClient, import_root: Path
) -> None:
    client = importing_client
    folder = import_root / "card"
    folder.mkdir()
    (folder / "IMG_0001.DNG").write_bytes(dng_bytes(SPEC))
    (folder / "IMG_0001.JPG").write_bytes(camera_jpeg())
    progress = client.post("/imports", json={"path": "card", "batch_name": "c"}).json()
    (folder / "IMG_0001.DNG").unlink()

    again = client.get(f"/imports/{progress['id']}").json()
    assert (again["changed"], again["missing"]) == (0, 1)
    batch = client.get(f"/batches/{progress['batch_id']}")
    assert batch.status_code == 200
    image_id = batch.json()["image_associations"][0]["image"]["id"]
    raw = client.get(f"/images/{image_id}", params={"which": "raw"})
    assert raw.status_code == 404
    assert "no longer available" in raw.json()["detail"]
    assert client.get(f"/images/{image_id}").status_code == 200  # the JPEG is still there
