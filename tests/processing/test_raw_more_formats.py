"""RAF, CR3, ORF and RW2 files with their cameras' container structure (tests/raw_factory_more.py)
through the project's own code: recognised by content, decoded by LibRaw from the large
preview or at half size, turned upright, their metadata read. LibRaw gives back the exact
sensor samples; ExifTool, reading them independently, finds each maker's layout."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import rawpy
from PIL import Image

from processing.validation import inspect_image_file
from tests.api.test_xmp_export import EXIFTOOL, needs_exiftool
from tests.raw_factory import _cfa, scene
from tests.raw_factory_more import MORE_CAMERAS as CAMERAS
from tests.raw_factory_more import camera_raw_bytes as raw_bytes
from tests.raw_factory_more import camera_spec

MAX_PIXELS = 250_000_000
KINDS = sorted(CAMERAS)
# A development goes through the real body's colour matrix, while the made sensor data holds
# the scene's sRGB values: its grey levels match the scene less closely than a preview's
# (0.89-0.93 measured, against < 0.5 for another picture or a wrong turn).
DEVELOPED_LIKENESS = 0.8
TURNS = [
    (6, Image.Transpose.ROTATE_270),
    (8, Image.Transpose.ROTATE_90),
    (3, Image.Transpose.ROTATE_180),
]


def _write(path: Path, kind: str, **changes: object) -> Path:
    path.write_bytes(raw_bytes(kind, camera_spec(kind, **changes)))
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_the_metadata_reads_back(tmp_path: Path, kind: str) -> None:
    spec = camera_spec(kind, orientation=6, serial=f"{kind}-0042")
    path = tmp_path / "upload"
    path.write_bytes(raw_bytes(kind, spec))
    meta = inspect_image_file(path, MAX_PIXELS).metadata
    assert (meta.width, meta.height, meta.orientation) == (*spec.size, 6)  # LibRaw's
    assert (meta.camera_make, meta.camera_model) == (CAMERAS[kind].make, CAMERAS[kind].model)
    assert meta.camera_serial == f"{kind}-0042"
    assert meta.shot_at == datetime(2024, 5, 6, 7, 8, 9, 250_000, timezone(timedelta(hours=2)))
    assert meta.lens_model == "Test 50mm F1.8"
    assert (meta.iso, meta.exposure_time, meta.f_number, meta.focal_length) == (
        400,
        "1/250",
        2.8,
        "50mm",
    )


# ORF's samples are 12-bit: the factory keeps the top 12 of the 14 bits.
SAMPLE_SHIFT = {"ORF": 2}


@pytest.mark.parametrize("kind", KINDS)
def test_libraw_reads_back_the_sensor_samples(tmp_path: Path, kind: str) -> None:
    # Fujifilm's 16-bit words, Olympus' packed 12 bits, Panasonic's RawFormat 5 blocks in
    # rotated 16 KiB chunks, Canon's CRX line coding (adaptive Golomb-Rice codes).
    spec = camera_spec(kind, seed=3)
    path = tmp_path / "a"
    path.write_bytes(raw_bytes(kind, spec))
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_pattern.tolist() == [[0, 1], [3, 2]]  # R G / G B
        samples = raw.raw_image_visible.astype(np.int64)
    expected = _cfa(scene(spec.size, 3)).astype(np.int64) >> SAMPLE_SHIFT.get(kind, 0)
    assert np.array_equal(samples, expected)


# Where ExifTool names each maker's serial (Fujifilm keeps it in its maker note only).
SERIAL_TAG = {"RAF": "InternalSerialNumber"}


@needs_exiftool
@pytest.mark.parametrize("kind", KINDS)
def test_exiftool_reads_the_makers_layout(tmp_path: Path, kind: str) -> None:
    # ExifTool finds the file type, the maker note's or Exif serial and the preview where
    # the maker's files keep them (RAF's header, CR3's PRVW box, ORF's maker note, RW2's
    # JpgFromRaw), without a warning.
    path = tmp_path / f"frame.{kind.lower()}"
    path.write_bytes(raw_bytes(kind, camera_spec(kind, serial="3021234")))
    assert EXIFTOOL is not None
    serial = SERIAL_TAG.get(kind, "SerialNumber")
    tags = ["-FileType", f"-{serial}", "-PreviewImage", "-JpgFromRaw", "-Warning"]
    out = subprocess.run(
        [EXIFTOOL, "-j", *tags, str(path)], capture_output=True, check=True, text=True
    ).stdout
    [read] = json.loads(out)
    assert read["FileType"] == kind
    assert str(read[serial]) == "3021234"
    assert "Warning" not in read
    preview = read.get("PreviewImage") or read.get("JpgFromRaw")
    assert isinstance(preview, str)
    assert preview.startswith("(Binary data")
