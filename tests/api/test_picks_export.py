"""Picks every editor sees: `export?format=xmp&embed=true` (copies of JPEG/TIFF/DNG with the
XMP inside, sidecars for RAW) and sidecars named per editor; read back by ExifTool and exiv2."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import new_batch, upload
from tests.api.test_xmp_export import _exiftool as _read_all
from tests.api.test_xmp_export import needs_exiftool
from tests.factories import jpeg_bytes, tiff_bytes
from tests.processing.test_xmp_embed import _scan_data, needs_exiv2

EXIFTOOL = shutil.which("exiftool")
EXIV2 = shutil.which("exiv2")


def _rejected_first(client: TestClient, files: list[tuple[str, bytes]]) -> tuple[int, list[int]]:
    ids = upload(client, files)
    batch_id = new_batch(client, ids)
    response = client.put(
        f"/batches/{batch_id}/decisions", json={"image_ids": ids[:1], "pick": "reject"}
    )
    assert response.status_code == 200, response.text
    return batch_id, ids


@needs_exiftool
def test_embedded_export_puts_the_picks_inside_jpeg_and_tiff_copies(
    client: TestClient, tmp_path: Path
) -> None:
    jpeg = jpeg_bytes(size=(96, 64), seed=81)
    files = [
        ("IMG_0001.JPG", jpeg),
        ("scan.tif", tiff_bytes(seed=82)),
        ("DSC_3.NEF", tiff_bytes(seed=83)),
    ]
    batch_id, ids = _rejected_first(client, files)

    params = {"format": "xmp", "embed": "true"}
    response = client.get(f"/batches/{batch_id}/export", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    read = _read_all(response.content, tmp_path)

    # JPEG and TIFF: copies named like the photo; the TIFF-based RAW: a sidecar, as before.
    assert set(read) == {"IMG_0001.JPG", "scan.tif", "DSC_3.xmp"}
    assert read["IMG_0001.JPG"]["Rating"] == -1  # the photographer's reject, inside the JPEG
    assert read["IMG_0001.JPG"]["DecidedBy"] == "user"
    assert read["scan.tif"]["DecidedBy"] == "suggestion"
    assert read["DSC_3.xmp"]["HierarchicalSubject"] == "Pixal|Ungrouped"
    copy = (tmp_path / "IMG_0001.JPG").read_bytes()
    assert _scan_data(copy) == _scan_data(jpeg)  # the image data as uploaded, byte for byte
    assert client.get(f"/images/{ids[0]}").content == jpeg  # the stored original untouched


@needs_exiftool
@needs_exiv2
def test_darktable_naming_keeps_a_reject_rejected(client: TestClient, tmp_path: Path) -> None:
    batch_id, _ids = _rejected_first(
        client, [("IMG_0001.CR2", tiff_bytes(seed=84)), ("IMG_0002.CR2", tiff_bytes(seed=85))]
    )
    url = f"/batches/{batch_id}/export"

    darktable = _read_all(
        client.get(url, params={"format": "xmp", "editor": "darktable"}).content, tmp_path / "dt"
    )
    assert set(darktable) == {"IMG_0001.CR2.xmp", "IMG_0002.CR2.xmp"}  # darktable's own name
    assert darktable["IMG_0001.CR2.xmp"]["Rating"] == -1
    assert EXIV2 is not None
    out = subprocess.run(
        [EXIV2, "-K", "Xmp.xmp.Rating", "-P", "v", str(tmp_path / "dt" / "IMG_0001.CR2.xmp")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "-1"

    lightroom = client.get(url, params={"format": "xmp", "editor": "lightroom"}).content
    assert set(_read_all(lightroom, tmp_path / "lr")) == {"IMG_0001.xmp", "IMG_0002.xmp"}
    # An explicit naming wins over the editor's.
    both = client.get(url, params={"format": "xmp", "editor": "darktable", "naming": "basename"})
    with zipfile.ZipFile(io.BytesIO(both.content)) as archive:
        assert sorted(archive.namelist()) == ["IMG_0001.xmp", "IMG_0002.xmp"]
    assert client.get(url, params={"format": "xmp", "editor": "photoshop"}).status_code == 422


@needs_exiftool
def test_an_original_gone_from_disk_still_gets_its_sidecar(
    client: TestClient, storage_root: Path, tmp_path: Path
) -> None:
    batch_id, ids = _rejected_first(
        client, [("gone.jpg", jpeg_bytes(seed=86)), ("kept.jpg", jpeg_bytes(seed=87))]
    )
    stored = client.get("/images/").json()
    gone = next(image for image in stored if image["id"] == ids[0])
    (storage_root / gone["file_path"]).unlink()

    response = client.get(f"/batches/{batch_id}/export", params={"format": "xmp", "embed": "true"})
    assert response.status_code == 200
    read = _read_all(response.content, tmp_path)
    assert set(read) == {"gone.xmp", "kept.jpg"}
    assert read["gone.xmp"]["Rating"] == -1


DARKTABLE_CLI = shutil.which("darktable-cli")
needs_darktable = pytest.mark.skipif(
    DARKTABLE_CLI is None and not os.environ.get("CI"), reason="darktable is not installed"
)


def _darktable_reads(photo: Path, sidecar: Path | None, tmp_path: Path) -> dict[str, Any]:
    """What darktable made of the photo (and sidecar): the rating and label it writes into an
    export of it, read by ExifTool."""
    assert DARKTABLE_CLI is not None
    assert EXIFTOOL is not None
    out = tmp_path / f"dt-{photo.stem}.jpg"
    sidecar_arg = [str(sidecar)] if sidecar else []
    config = tmp_path / f"dt-config-{photo.stem}"
    subprocess.run(
        [DARKTABLE_CLI, str(photo), *sidecar_arg, str(out)]
        + ["--core", "--library", ":memory:", "--configdir", str(config)],
        capture_output=True,
        check=True,
        timeout=300,
    )
    read = subprocess.run(
        [EXIFTOOL, "-j", "-n", "-XMP-xmp:Rating", "-XMP-xmp:Label", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    entry: dict[str, Any] = json.loads(read.stdout)[0]
    return entry


@needs_exiftool
@needs_darktable
def test_darktable_reads_a_reject_from_its_sidecar_and_from_the_embedded_copy(
    client: TestClient, tmp_path: Path
) -> None:
    batch_id, ids = _rejected_first(
        client, [("IMG_0001.JPG", jpeg_bytes(seed=88)), ("IMG_0002.JPG", jpeg_bytes(seed=89))]
    )
    keep = {"image_ids": ids[1:], "pick": "keep", "color_label": "Blue", "rating": 4}
    assert client.put(f"/batches/{batch_id}/decisions", json=keep).status_code == 200
    url = f"/batches/{batch_id}/export"

    sidecars = client.get(url, params={"format": "xmp", "editor": "darktable"}).content
    with zipfile.ZipFile(io.BytesIO(sidecars)) as archive:
        archive.extractall(tmp_path / "sidecars")
    for image_id in ids:
        photo = tmp_path / "sidecars" / f"IMG_000{ids.index(image_id) + 1}.JPG"
        photo.write_bytes(client.get(f"/images/{image_id}").content)
    first = tmp_path / "sidecars" / "IMG_0001.JPG"
    second = tmp_path / "sidecars" / "IMG_0002.JPG"
    assert _darktable_reads(first, Path(f"{first}.xmp"), tmp_path)["Rating"] == -1
    assert _darktable_reads(second, Path(f"{second}.xmp"), tmp_path) == {
        "SourceFile": str(tmp_path / "dt-IMG_0002.jpg"),
        "Rating": 4,
        "Label": "Blue",
    }

    embedded = client.get(url, params={"format": "xmp", "embed": "true"}).content
    with zipfile.ZipFile(io.BytesIO(embedded)) as archive:
        archive.extractall(tmp_path / "embedded")
    copy = tmp_path / "embedded" / "IMG_0001.JPG"
    assert _darktable_reads(copy, None, tmp_path / "embedded")["Rating"] == -1
