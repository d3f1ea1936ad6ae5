"""Cards and folders imported in place: real folders on disk, the real app, no copy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services import import_service
from tests.api.test_xmp_export import exiftool_xmp, needs_exiftool
from tests.factories import jpeg_bytes

EXIFTOOL = shutil.which("exiftool")


def _card(root: Path, outside: Path) -> dict[str, bytes]:
    """A card: photos in DCIM folders, a sidecar, an empty file, a text file, a symlink out of
    the root, a symlink inside it, a FIFO."""
    photos = {
        "DCIM/100CANON/IMG_0001.JPG": jpeg_bytes(seed=101),
        "DCIM/100CANON/IMG_0002.JPG": jpeg_bytes(seed=102),
        "DCIM/101CANON/IMG_0100.JPG": jpeg_bytes(seed=103),
    }
    for relative, data in photos.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    (root / "DCIM/100CANON/IMG_0001.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    (root / "DCIM/100CANON/EMPTY.JPG").write_bytes(b"")
    (root / "DCIM/100CANON/notes.JPG").write_text("not a photo")
    outside.write_bytes(jpeg_bytes(seed=104))
    (root / "DCIM/100CANON/escape.JPG").symlink_to(outside)
    (root / "DCIM/100CANON/again.JPG").symlink_to(root / "DCIM/100CANON/IMG_0002.JPG")
    os.mkfifo(root / "DCIM/100CANON/pipe.JPG")
    return photos


def test_imports_are_off_without_import_roots(client: TestClient) -> None:
    response = client.post("/imports", json={"path": "/tmp", "batch_name": "card"})
    assert response.status_code == 403
    assert "IMPORT_ROOTS" in response.json()["detail"]


def test_a_card_is_imported_in_place(
    importing_client: TestClient,
    import_root: Path,
    storage_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = importing_client
    monkeypatch.setattr(import_service, "CHUNK", 2)  # several transactions, checked ahead
    card = import_root / "card-1"
    photos = _card(card, tmp_path / "secret.jpg")

    response = client.post("/imports", json={"path": "card-1", "batch_name": "Wedding"})
    assert response.status_code == 202, response.text
    progress = client.get(f"/imports/{response.json()['id']}").json()
    assert progress["status"] == "complete"
    # 3 photos + the symlink inside the card (a duplicate) + empty + text; the sidecar is
    # skipped; the symlink out of the root and the FIFO are refused.
    assert (progress["found"], progress["done"], progress["failed"]) == (6, 6, 2)
    assert (progress["duplicates"], progress["refused"]) == (1, 2)
    assert {f["file"] for f in progress["failures"]} == {
        "DCIM/100CANON/EMPTY.JPG",
        "DCIM/100CANON/notes.JPG",
    }
    assert progress["files_per_second"] > 0
    assert (progress["changed"], progress["missing"]) == (0, 0)

    batch = client.get(f"/batches/{progress['batch_id']}").json()
    assert batch["batch_name"] == "Wedding"
    images = {a["image"]["original_filename"]: a["image"] for a in batch["image_associations"]}
    assert set(images) == {"IMG_0001.JPG", "IMG_0002.JPG", "IMG_0100.JPG"}
    assert all(image["has_thumbnail"] and image["has_embedding"] for image in images.values())
    assert not list((storage_root / "images").iterdir())  # no byte copied
    first = images["IMG_0001.JPG"]["id"]
    assert client.get(f"/images/{first}").content == photos["DCIM/100CANON/IMG_0001.JPG"]


def test_a_deleted_image_leaves_the_photographers_file(
    importing_client: TestClient, import_root: Path, storage_root: Path, tmp_path: Path
) -> None:
    client = importing_client
    _card(import_root / "card", tmp_path / "other.jpg")
    progress = client.post("/imports", json={"path": "card", "batch_name": "b"}).json()
    batch = client.get(f"/batches/{progress['batch_id']}").json()
    image = batch["image_associations"][0]["image"]
    original = import_root / "card" / "DCIM" / "100CANON" / image["original_filename"]
    if not original.exists():
        original = import_root / "card" / "DCIM" / "101CANON" / image["original_filename"]
    before = original.read_bytes()
    thumbnails = list((storage_root / "thumbnails").iterdir())

    assert client.delete(f"/images/{image['id']}").status_code == 200
    assert original.read_bytes() == before  # the photographer's file, untouched
    assert len(list((storage_root / "thumbnails").iterdir())) == len(thumbnails) - 1
    assert client.get(f"/images/{image['id']}").status_code == 404


def test_changed_and_missing_originals_are_reported(
    importing_client: TestClient, import_root: Path, tmp_path: Path
) -> None:
    client = importing_client
    card = import_root / "card"
    _card(card, tmp_path / "other.jpg")
    progress = client.post("/imports", json={"path": str(card), "batch_name": "b"}).json()
    with (card / "DCIM/100CANON/IMG_0001.JPG").open("ab") as file:
        file.write(b"edited elsewhere")
    (card / "DCIM/101CANON/IMG_0100.JPG").unlink()

    again = client.get(f"/imports/{progress['id']}").json()
    assert (again["changed"], again["missing"]) == (1, 1)
    batch = client.get(f"/batches/{progress['batch_id']}")
    assert batch.status_code == 200  # the page never fails for a file gone
    gone = next(
        a["image"]["id"]
        for a in batch.json()["image_associations"]
        if a["image"]["original_filename"] == "IMG_0100.JPG"
    )
    response = client.get(f"/images/{gone}")
    assert response.status_code == 404
    assert "no longer at" in response.json()["detail"]
    export = client.get(
        f"/batches/{progress['batch_id']}/export", params={"format": "xmp", "embed": "true"}
    )
    assert export.status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("../outside", 422),
        ("card/../../outside", 422),
        ("/etc", 403),
        ("escape-dir", 403),
        ("card/DCIM/100CANON/IMG_0001.JPG", 400),
        ("no-such-card", 404),
        ("bad\x00name", 422),
    ],
)
def test_paths_out_of_the_roots_are_refused(
    importing_client: TestClient, import_root: Path, tmp_path: Path, path: str, status: int
) -> None:
    _card(import_root / "card", tmp_path / "other.jpg")
    (import_root / "escape-dir").symlink_to(tmp_path)  # a folder link out of the root
    response = importing_client.post("/imports", json={"path": path, "batch_name": "b"})
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert importing_client.get("/batches/").json() == []  # no half-made batch


def test_the_published_path_pattern_refuses_what_the_server_refuses(
    importing_client: TestClient,
) -> None:
    # A '..' segment or NUL is refused; the schema says so (schemathesis ST202: a 400 for a
    # path the published schema allowed), and admits every other name, dots included.
    schema = importing_client.get("/openapi.json").json()["components"]["schemas"]
    pattern = re.compile(schema["ImportRequest"]["properties"]["path"]["pattern"])
    refused = ["..", "../x", "a/..", "a/../b", "/a/../b", "..\x00", "bad\x00name", "a/\x00"]
    admitted = ["a", "/a/b", ".", "./a", "a/.", "...", "..a", "a..", ".a", "a/.../b", "a//b", "/"]
    for path in refused:
        assert pattern.search(path) is None, path
    for path in admitted:
        assert pattern.search(path) is not None, path
    refusal = importing_client.post("/imports", json={"path": "a/../b", "batch_name": "b"})
    assert refusal.status_code == 422
    assert "'..' name (the parent folder)" in refusal.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        # Schema-valid paths no folder can have: 404 (schemathesis: a 500, then ST202 as 400)
        ("0" * 4096, 404, "too long"),  # one name of 4,096 bytes
        ("é" * 200, 404, "too long"),  # 200 characters, 400 bytes: over a name's 255
        ("card/" * 819 + "x", 404, "too long"),  # 4,096 bytes, the root's before: over PATH_MAX
        ("loop/a", 400, "symbolic links"),  # a link to itself
    ],
)
def test_paths_the_file_system_cannot_resolve_are_4xx(
    importing_client: TestClient, import_root: Path, path: str, status: int, reason: str
) -> None:
    (import_root / "card").mkdir()
    (import_root / "loop").mkdir()
    (import_root / "loop/a").symlink_to(import_root / "loop/b")
    (import_root / "loop/b").symlink_to(import_root / "loop/a")
    response = importing_client.post("/imports", json={"path": path, "batch_name": "b"})
    assert response.status_code == status, response.text
    assert reason in response.json()["detail"]
    assert importing_client.get("/batches/").json() == []


def test_an_unknown_import_is_404(importing_client: TestClient) -> None:
    assert importing_client.get("/imports/12345").status_code == 404


def test_the_command_line_imports_a_folder(
    importing_client: TestClient,
    import_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m scripts.import_folder PATH NAME`, its requests answered by the real app."""
    from scripts import import_folder

    def call(server: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = importing_client.request(method, path, json=body)
        return response.status_code, response.json()

    monkeypatch.setattr(import_folder, "_call", call)
    _card(import_root / "card", tmp_path / "other.jpg")
    assert import_folder.main([str(import_root / "card"), "Card one"]) == 0
    out = capsys.readouterr().out
    assert "complete: 6/6 files, 2 failed, 1 duplicates, 2 refused" in out
    assert "DCIM/100CANON/EMPTY.JPG: file is empty" in out

    assert import_folder.main([str(tmp_path), "Elsewhere"]) == 1
    assert "refused (403)" in capsys.readouterr().err


@needs_exiftool
def test_sidecars_beside_the_originals_merge_into_the_photographers_own(
    importing_client: TestClient, import_root: Path, tmp_path: Path
) -> None:
    client = importing_client
    card = import_root / "card"
    photos = _card(card, tmp_path / "other.jpg")
    theirs = card / "DCIM/100CANON/IMG_0002.xmp"
    assert EXIFTOOL is not None
    subprocess.run(
        [EXIFTOOL, "-q", "-o", str(theirs), "-XMP-dc:Title=Bride, first look", "-XMP-xmp:Rating=1"],
        check=True,
    )
    progress = client.post("/imports", json={"path": "card", "batch_name": "b"}).json()
    batch = client.get(f"/batches/{progress['batch_id']}").json()
    ids = {a["image"]["original_filename"]: a["image"]["id"] for a in batch["image_associations"]}
    reject = {"image_ids": [ids["IMG_0001.JPG"]], "pick": "reject"}
    assert client.put(f"/batches/{progress['batch_id']}/decisions", json=reject).status_code == 200

    url = f"/imports/{progress['id']}/sidecars"
    report = client.post(url).json()
    # IMG_0001.xmp (an empty packet of theirs) and IMG_0002.xmp merged, IMG_0100.xmp new.
    assert (report["written"], report["merged"], report["skipped"]) == (1, 2, [])
    read = exiftool_xmp(card, ["DCIM/100CANON/IMG_0001.xmp", "DCIM/100CANON/IMG_0002.xmp"])
    assert read["DCIM/100CANON/IMG_0001.xmp"]["Rating"] == -1
    assert read["DCIM/100CANON/IMG_0002.xmp"]["Title"] == "Bride, first look"  # theirs kept
    assert read["DCIM/100CANON/IMG_0002.xmp"]["Rating"] == 3  # ours: ungrouped
    assert (card / "DCIM/101CANON/IMG_0100.xmp").is_file()

    replaced = client.post(url, params={"overwrite": "true"}).json()
    assert (replaced["written"], replaced["merged"]) == (3, 0)
    read = exiftool_xmp(card, ["DCIM/100CANON/IMG_0002.xmp"])
    assert "Title" not in read["DCIM/100CANON/IMG_0002.xmp"]

    darktable = client.post(url, params={"editor": "darktable"}).json()
    assert darktable["written"] == 3
    assert (
        exiftool_xmp(card, ["DCIM/100CANON/IMG_0001.JPG.xmp"])["DCIM/100CANON/IMG_0001.JPG.xmp"][
            "Rating"
        ]
        == -1
    )
    for relative, data in photos.items():
        assert (card / relative).read_bytes() == data  # the photos themselves untouched
    assert client.post("/imports/999/sidecars").status_code == 404
