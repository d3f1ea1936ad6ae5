"""XMP sidecars, read back by an independent reader: ExifTool (Debian's libimage-exiftool-perl)."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import new_batch, upload
from tests.factories import jpeg_bytes

EXIFTOOL = shutil.which("exiftool")
# Skipped on a developer machine without ExifTool; never in CI, where .ci/run installs it.
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None and not os.environ.get("CI"), reason="exiftool is not installed"
)


def _grouped_batch(client: TestClient, names: list[str]) -> tuple[int, list[int]]:
    """A batch: first two images "Group 3", then one "Group <1>", then one "Ungrouped"."""
    ids = upload(client, [(name, jpeg_bytes(seed=40 + k)) for k, name in enumerate(names)])
    batch_id = new_batch(client, ids)
    group_map = {"Group 3": ids[:2], "Group <1> & co": ids[2:3], "Ungrouped": ids[3:]}
    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": group_map})
    assert response.status_code == 200, response.text
    return batch_id, ids


def _exiftool(zip_bytes: bytes, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Unzip and read every sidecar with `exiftool -j`; keyed by the path inside the zip."""
    assert EXIFTOOL is not None
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path)
    return exiftool_xmp(tmp_path, names)


def exiftool_xmp(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """`exiftool -j -n -XMP:all` of these files of `folder`; keyed by their relative names."""
    assert EXIFTOOL is not None
    result = subprocess.run(
        [EXIFTOOL, "-j", "-n", "-XMP:all", *names],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    return {entry["SourceFile"]: entry for entry in json.loads(result.stdout)}


def _as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


@needs_exiftool
def test_sidecars_carry_rating_label_and_keywords(client: TestClient, tmp_path: Path) -> None:
    names = ["IMG_0001.CR2", "IMG_0002.JPG", "DSC_7.jpeg", "IMG_0004.NEF"]
    batch_id, ids = _grouped_batch(client, names)
    batch = client.get(f"/batches/{batch_id}").json()
    rank = {a["image"]["id"]: a["quality_rank"] for a in batch["image_associations"]}
    keeper_of_3 = next(i for i in ids[:2] if rank[i] == 1)
    other_of_3 = next(i for i in ids[:2] if i != keeper_of_3)

    response = client.get(f"/batches/{batch_id}/export", params={"format": "xmp"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert f"batch-{batch_id}.zip" in response.headers["content-disposition"]
    read = _exiftool(response.content, tmp_path)

    # Named as Lightroom looks for them: the photo's name with .xmp instead of its extension.
    sidecar = {i: f"{Path(n).stem}.xmp" for i, n in zip(ids, names, strict=True)}
    assert set(read) == set(sidecar.values())

    keeper = read[sidecar[keeper_of_3]]
    assert (keeper["Rating"], keeper["Label"]) == (5, "Green")
    assert _as_list(keeper["HierarchicalSubject"]) == ["Pixal|Group 3", "Pixal|Keeper"]
    assert _as_list(keeper["Subject"]) == ["Pixal", "Group 3", "Keeper"]

    other = read[sidecar[other_of_3]]
    assert (other["Rating"], other["Label"]) == (2, "Red")
    assert _as_list(other["HierarchicalSubject"]) == ["Pixal|Group 3", "Pixal|Alternate"]

    # A label with XML's special characters survives as text (a real XML writer escaped it).
    odd = read[sidecar[ids[2]]]
    assert _as_list(odd["HierarchicalSubject"]) == ["Pixal|Group <1> & co", "Pixal|Keeper"]

    ungrouped = read[sidecar[ids[3]]]
    assert (ungrouped["Rating"], ungrouped["Label"]) == (3, "Yellow")
    assert _as_list(ungrouped["HierarchicalSubject"]) == ["Pixal|Ungrouped"]


@needs_exiftool
def test_ratings_and_labels_are_configurable(client: TestClient, tmp_path: Path) -> None:
    batch_id, ids = _grouped_batch(client, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    params = {
        "format": "xmp",
        "keeper_rating": 4,
        "other_rating": -1,
        "ungrouped_rating": 0,
        "keeper_label": "Blue",
        "other_label": "none",
        "naming": "full",
    }
    read = _exiftool(client.get(f"/batches/{batch_id}/export", params=params).content, tmp_path)

    assert set(read) == {"a.jpg.xmp", "b.jpg.xmp", "c.jpg.xmp", "d.jpg.xmp"}
    ratings = sorted(entry["Rating"] for entry in read.values())
    assert ratings == [-1, 0, 4, 4]  # one alternate rejected, one ungrouped, two keepers
    rejected = next(entry for entry in read.values() if entry["Rating"] == -1)
    assert "Label" not in rejected
    assert {read["c.jpg.xmp"]["Label"], read["d.jpg.xmp"]["Label"]} == {"Blue", "Yellow"}


@needs_exiftool
def test_name_clashes_keep_every_sidecar_beside_its_own_name(
    client: TestClient, tmp_path: Path
) -> None:
    # A RAW+JPEG pair and the same name from a second card: nothing overwritten.
    ids = upload(
        client,
        [
            (n, jpeg_bytes(seed=60 + k))
            for k, n in enumerate(["IMG_1.CR2", "IMG_1.JPG", "img_1.jpg"])
        ],
    )
    batch_id = new_batch(client, ids)
    response = client.get(f"/batches/{batch_id}/export", params={"format": "xmp"})
    read = _exiftool(response.content, tmp_path)

    assert set(read) == {"IMG_1.xmp", f"image-{ids[1]}/IMG_1.xmp", f"image-{ids[2]}/img_1.xmp"}
    assert all(entry["HierarchicalSubject"] == "Pixal|Ungrouped" for entry in read.values())
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        modes = {stat.S_IMODE(info.external_attr >> 16) for info in archive.infolist()}
    assert modes == {0o644}  # unzip gives every reader access, not the owner alone


def test_xmp_export_refuses_bad_options(client: TestClient) -> None:
    batch_id = new_batch(client, upload(client, [("a.jpg", jpeg_bytes(seed=70))]))
    url = f"/batches/{batch_id}/export"
    assert client.get(url, params={"format": "xmp", "keeper_rating": 6}).status_code == 422
    assert client.get(url, params={"format": "xmp", "keeper_label": "Pink"}).status_code == 422
    assert client.get("/batches/999999/export", params={"format": "xmp"}).status_code == 404
