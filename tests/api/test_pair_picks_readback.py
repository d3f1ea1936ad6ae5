"""A RAW+JPEG pair's picks, exported through the API and read back by ExifTool: every file of
the pair carries the photographer's reject, under the names of the pair's own files, in the
sidecars of each editor's naming and in the embedded copies. ExifTool validates each copy as it
validates the upload: the export adds no warning, and real cameras' maker notes survive it."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import rawpy
from fastapi.testclient import TestClient

from tests.api.helpers import new_batch
from tests.api.test_raw_jpeg_pairs import SPEC, camera_jpeg, post
from tests.api.test_xmp_export import EXIFTOOL, needs_exiftool
from tests.processing.test_xmp_embed import _scan_data
from tests.raw_factory import dng_bytes

pytestmark = needs_exiftool

RAW, JPEG, SINGLE = "IMG_0001.DNG", "IMG_0001.JPG", "IMG_0002.JPG"
REAL = Path(__file__).parent.parent / "data" / "exiftool"  # real camera files (SOURCES.md)
_REJECTED = {"Rating": -1, "Label": "Purple", "DecidedBy": "user"}
_KEPT = {"Rating": 4, "Label": "Blue", "DecidedBy": "user"}
_SERIAL_TAGS = ("SerialNumber", "InternalSerialNumber", "CameraSerialNumber")


def _decided_pair(client: TestClient) -> tuple[int, int, dict[str, bytes]]:
    """A batch of a rejected RAW+JPEG pair and a kept single JPEG; the files as uploaded."""
    files = {RAW: dng_bytes(SPEC), JPEG: camera_jpeg()}
    pair = post(client, list(files.items())).json()
    assert len({item["id"] for item in pair}) == 1
    files[SINGLE] = camera_jpeg(seed=9, taken="2024:05:06 07:09:00")
    [single] = post(client, [(SINGLE, files[SINGLE])]).json()
    batch_id = new_batch(client, [pair[0]["id"], single["id"]])
    for ids, decision in (
        ([pair[0]["id"]], {"pick": "reject", "color_label": "Purple"}),
        ([single["id"]], {"pick": "keep", "rating": 4, "color_label": "Blue"}),
    ):
        response = client.put(f"/batches/{batch_id}/decisions", json={"image_ids": ids, **decision})
        assert response.status_code == 200, response.text
    return batch_id, pair[0]["id"], files


def _exiftool(folder: Path, names: list[str], tags: tuple[str, ...] = ()) -> dict[str, Any]:
    """ExifTool's reading of each file: its XMP (and `tags`), and its validation: the counts
    of errors, warnings and minor warnings, and the first warning or error."""
    assert EXIFTOOL is not None
    result = subprocess.run(
        [EXIFTOOL, "-j", "-n", "-validate", "-warning", "-error", "-XMP:all"]
        + [f"-{tag}" for tag in tags]
        + names,
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: ExifTool found an error
    return {entry["SourceFile"]: entry for entry in json.loads(result.stdout)}


def _unzip(response: httpx.Response, folder: Path) -> list[str]:
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        archive.extractall(folder)
        return sorted(archive.namelist())


def _says(entry: dict[str, Any], expected: dict[str, Any]) -> None:
    assert {key: entry.get(key) for key in expected} == expected, entry


def _validates_as_uploaded(
    read: dict[str, Any], files: dict[str, bytes], folder: Path, tags: tuple[str, ...] = ()
) -> None:
    """Each exported copy in `read` validates in ExifTool as its upload does, and its `tags`
    read the same."""
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    uploaded = _exiftool(folder, list(files), tags)
    keys = ("Validate", "Warning", "Error", *tags)
    for name in files:
        assert {k: read[name].get(k) for k in keys} == {k: uploaded[name].get(k) for k in keys}


@pytest.mark.parametrize(
    ("editor", "names"),
    [
        ("lightroom", {RAW: "IMG_0001.xmp", SINGLE: "IMG_0002.xmp"}),
        ("capture-one", {RAW: "IMG_0001.xmp", SINGLE: "IMG_0002.xmp"}),
        ("darktable", {RAW: f"{RAW}.xmp", JPEG: f"{JPEG}.xmp", SINGLE: f"{SINGLE}.xmp"}),
        ("digikam", {RAW: f"{RAW}.xmp", JPEG: f"{JPEG}.xmp", SINGLE: f"{SINGLE}.xmp"}),
    ],
)
def test_each_editors_sidecars_of_a_pair_read_back_as_rejected(
    client: TestClient, tmp_path: Path, editor: str, names: dict[str, str]
) -> None:
    batch_id, _image_id, _files = _decided_pair(client)
    response = client.get(f"/batches/{batch_id}/export", params={"format": "xmp", "editor": editor})
    assert _unzip(response, tmp_path) == sorted(names.values())
    read = _exiftool(tmp_path, sorted(names.values()))
    for photo, sidecar in names.items():
        assert read[sidecar]["Validate"] == "0 0 0"  # no error, no warning
        _says(read[sidecar], _KEPT if photo == SINGLE else _REJECTED)


def test_the_embedded_export_of_a_pair_reads_back_as_rejected_in_both_copies(
    client: TestClient, tmp_path: Path
) -> None:
    batch_id, image_id, files = _decided_pair(client)
    response = client.get(
        f"/batches/{batch_id}/export",
        params={"format": "xmp", "embed": "true", "editor": "darktable"},
    )
    # Lightroom reads XMP inside JPEG and DNG, not beside them: copies named like the files.
    assert _unzip(response, tmp_path / "export") == [RAW, JPEG, SINGLE]
    read = _exiftool(tmp_path / "export", [RAW, JPEG, SINGLE])
    _validates_as_uploaded(read, files, tmp_path / "uploaded")
    _says(read[RAW], _REJECTED)
    _says(read[JPEG], _REJECTED)
    _says(read[SINGLE], _KEPT)
    for name in (JPEG, SINGLE):  # the JPEGs' image data as uploaded, byte for byte
        assert _scan_data((tmp_path / "export" / name).read_bytes()) == _scan_data(files[name])
    with rawpy.imread(str(tmp_path / "export" / RAW)) as raw:  # the DNG copy still develops
        assert raw.raw_image_visible.shape == (SPEC.size[1], SPEC.size[0])
    # The stored originals are untouched; the pair's two files are the two uploaded.
    assert client.get(f"/images/{image_id}").content == files[JPEG]
    assert client.get(f"/images/{image_id}", params={"which": "raw"}).content == files[RAW]


def test_embedded_copies_of_real_camera_files_keep_their_maker_notes(
    client: TestClient, tmp_path: Path
) -> None:
    names = ["Canon1DmkIII.jpg", "NikonD70.jpg", "DNG.dng"]
    files = {name: (REAL / name).read_bytes() for name in names}
    items = post(client, list(files.items())).json()
    by_name = {item["original_filename"]: item["id"] for item in items}
    serials = [client.get(f"/images/metadata/{by_name[n]}").json()["camera_serial"] for n in names]
    assert serials == ["500292", "NO= 20025585", "012345678"]  # as ExifTool reads them
    batch_id = new_batch(client, list(by_name.values()))
    decision = {"image_ids": list(by_name.values()), "pick": "reject"}
    assert client.put(f"/batches/{batch_id}/decisions", json=decision).status_code == 200

    response = client.get(f"/batches/{batch_id}/export", params={"format": "xmp", "embed": "true"})
    assert _unzip(response, tmp_path / "export") == sorted(names)
    read = _exiftool(tmp_path / "export", names, _SERIAL_TAGS)
    _validates_as_uploaded(read, files, tmp_path / "uploaded", _SERIAL_TAGS)
    assert [read[name]["Rating"] for name in names] == [-1, -1, -1]
