"""Every camera RAW the test factories make, through the project's own code: DNG
(tests/raw_factory.py), NEF, CR2, ARW and PEF with their makers' TIFF layouts (same module),
RAF, CR3, ORF and RW2 with their containers (tests/raw_factory_more.py). Each has a real body's
Make and Model, CFA data coded as the maker does and a JPEG preview: recognised by content,
decoded by LibRaw from the preview or at half size, turned upright. The makers' own details
(sensor codes, metadata, ExifTool's reading) for NEF, CR2, ARW and PEF are below; those of the
other four are in test_raw_more_formats.py."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import rawpy
from PIL import Image

from processing.photo import load_oriented_rgb
from processing.raw import PREVIEW_MIN_SIDE, load_raw_rgb, read_raw_header
from processing.sniff import RAW_FORMATS, sniff_file
from processing.validation import inspect_image_file
from tests.api.test_xmp_export import EXIFTOOL, needs_exiftool
from tests.processing.test_raw import exposure, likeness
from tests.raw_factory import (
    CAMERAS,
    DngSpec,
    any_raw_bytes,
    camera_cfa,
    camera_spec,
    dng_bytes,
    scene,
    sensor_samples,
    write_camera_raw,
)
from tests.raw_factory_more import CAMERAS as EVERY_CAMERA
from tests.raw_factory_more import camera_raw_bytes as every_raw_bytes
from tests.raw_factory_more import camera_spec as every_camera_spec

MAX_PIXELS = 250_000_000
KINDS = list(CAMERAS)  # NEF, CR2, ARW, PEF
EVERY_KIND = ["DNG", *sorted(EVERY_CAMERA)]
# The grey levels of a camera's development follow the picture less closely than a DNG's do:
# LibRaw applies the body's colour matrix (from its own tables) to our sRGB-like samples
# (0.89-0.93 measured, against < 0.5 for another picture or a wrong turn).
SAME, OTHER = 0.85, 0.5
DEVELOPED = {"DNG": 0.9}  # a DNG's samples are the scene's own, no body's matrix
PREVIEW_LIKENESS = 0.9
# The picture LibRaw develops where it is not the sensor's (600 x 400; Sony's 608 x 400):
# LibRaw crops the D700's by 2 columns on each side.
SENSOR = {"NEF": (596, 400)}
TURNS = [
    (6, Image.Transpose.ROTATE_270),
    (8, Image.Transpose.ROTATE_90),
    (3, Image.Transpose.ROTATE_180),
]


def _spec(kind: str, **changes: object) -> DngSpec:
    return DngSpec(**changes) if kind == "DNG" else every_camera_spec(kind, **changes)  # type: ignore[arg-type]


def _write(path: Path, kind: str, spec: DngSpec) -> Path:
    path.write_bytes(dng_bytes(spec) if kind == "DNG" else every_raw_bytes(kind, spec))
    return path


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_recognised_by_content_and_stored_with_its_own_extension(tmp_path: Path, kind: str) -> None:
    path = _write(tmp_path / "upload", kind, _spec(kind))  # no name to go by
    assert sniff_file(path).raw_kind == kind
    inspected = inspect_image_file(path, MAX_PIXELS)
    assert inspected.format == kind
    assert (inspected.extension, inspected.mime_type) == RAW_FORMATS[kind]
    assert inspected.extension == f".{kind.lower()}"
    assert inspected.mime_type.startswith("image/x-")


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_a_large_preview_is_used(tmp_path: Path, kind: str) -> None:
    # The preview shows another picture than the sensor data: which one comes out tells
    # which path ran.
    spec = _spec(kind, preview_size=(1200, 800), seed=1, preview_seed=2)
    path = _write(tmp_path / "a", kind, spec)
    picture = load_raw_rgb(path, 512)
    assert picture.mode == "RGB"
    assert 512 <= max(picture.size) <= 1200
    assert likeness(picture, scene(spec.size, 2)) > PREVIEW_LIKENESS
    assert likeness(picture, scene(spec.size, 1)) < OTHER


@pytest.mark.parametrize("preview", [None, (900, 600)], ids=["no-preview", "small-preview"])
@pytest.mark.parametrize("kind", EVERY_KIND)
def test_without_a_large_preview_the_sensor_data_is_developed_at_half_size(
    tmp_path: Path, kind: str, preview: tuple[int, int] | None
) -> None:
    assert preview is None or max(preview) < PREVIEW_MIN_SIDE
    spec = _spec(kind, preview_size=preview, seed=1, preview_seed=2)
    path = _write(tmp_path / "a", kind, spec)
    header = read_raw_header(path, kind)
    assert (header.width, header.height) == SENSOR.get(kind, spec.size)
    picture = load_raw_rgb(path, 128)
    assert picture.size == (header.width // 2, header.height // 2)
    assert likeness(picture, scene(spec.size, 1)) > DEVELOPED.get(kind, SAME)
    assert likeness(picture, scene(spec.size, 2)) < OTHER


@pytest.mark.parametrize("preview", [(1200, 800), None], ids=["preview", "half-size"])
@pytest.mark.parametrize(("orientation", "turn"), TURNS)
@pytest.mark.parametrize("kind", EVERY_KIND)
def test_the_raw_orientation_is_applied(
    tmp_path: Path,
    kind: str,
    preview: tuple[int, int] | None,
    orientation: int,
    turn: Image.Transpose,
) -> None:
    spec = _spec(kind, preview_size=preview, orientation=orientation, seed=4)
    path = _write(tmp_path / "a", kind, spec)
    picture = load_oriented_rgb(path, 256)  # the entry point every consumer uses
    upright = scene(spec.size, 4).transpose(turn)
    assert (picture.width > picture.height) == (upright.width > upright.height)
    assert likeness(picture, upright) > (PREVIEW_LIKENESS if preview else DEVELOPED.get(kind, SAME))
    assert likeness(picture, upright.transpose(Image.Transpose.ROTATE_180)) < OTHER


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "uncompressed"])
@pytest.mark.parametrize("kind", KINDS)
def test_libraw_reads_back_the_sensor_samples(tmp_path: Path, kind: str, compressed: bool) -> None:
    # Nikon's lossless Huffman code (NEFCompression 3), Pentax's (with its table in the maker
    # note), Canon's lossless JPEG in two slices (a CR2 is always compressed), Sony's lossy
    # ARW2, or 14-bit samples in 16-bit words.
    width = 608 if kind == "ARW" else 602  # Sony's rows are a multiple of 32 wide
    spec = camera_spec(kind, size=(width, 398), seed=3, compressed=compressed)
    path = write_camera_raw(tmp_path / "a", kind, spec)
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_pattern.tolist() == [[0, 1], [3, 2]]  # R G / G B
        samples = raw.raw_image.astype(np.int64)
    assert np.array_equal(samples, sensor_samples(kind, spec))
    error = np.abs(samples - camera_cfa(spec))
    if kind == "ARW" and compressed:  # what ARW2 keeps: 11-bit codes through a tone curve
        assert error.mean() < 15
        assert error.max() <= 16 * 2 * 4  # half a code step at the curve's steepest
    else:
        assert error.max() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_the_metadata_reads_back(tmp_path: Path, kind: str) -> None:
    spec = camera_spec(kind, orientation=6, serial="3021234")
    path = write_camera_raw(tmp_path / "upload", kind, spec)
    meta = inspect_image_file(path, MAX_PIXELS).metadata
    assert meta.height == 400
    assert meta.orientation == 6
    assert (meta.camera_make, meta.camera_model) == (CAMERAS[kind].make, CAMERAS[kind].model)
    # Canon's maker note holds the serial as a number, which ExifTool prints with 10 digits.
    assert meta.camera_serial == ("0003021234" if kind == "CR2" else "3021234")
    assert meta.shot_at == datetime(2024, 5, 6, 7, 8, 9, 250_000, timezone(timedelta(hours=2)))
    assert meta.lens_model == "Test 50mm F1.8"
    assert exposure(meta) == (400, "1/250", 2.8, "50mm")


@needs_exiftool
@pytest.mark.parametrize("kind", ["DNG", *KINDS])
def test_exiftool_reads_the_makers_layout(tmp_path: Path, kind: str) -> None:
    # ExifTool takes a TIFF-based RAW's type from its name (CR2 from its "CR" mark, DNG from
    # DNGVersion); what it proves is that it finds the maker note, the serial and the preview
    # where the maker's files keep them, and that its validation of the file's structure
    # (offsets, tag types and order, overlaps) finds nothing.
    path = tmp_path / f"frame.{kind.lower()}"
    path.write_bytes(any_raw_bytes(kind, serial="3021234"))
    assert EXIFTOOL is not None
    tags = ["-FileType", "-SerialNumber", "-PreviewImage", "-JpgFromRaw", "-Warning", "-Validate"]
    out = subprocess.run(
        [EXIFTOOL, "-j", *tags, str(path)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    [read] = json.loads(out)
    assert read["FileType"] == kind
    assert str(read["SerialNumber"]).lstrip("0") == "3021234"
    assert "Warning" not in read
    assert read["Validate"] == "OK"
    preview = read.get("PreviewImage") or read.get("JpgFromRaw")
    assert isinstance(preview, str)
    assert preview.startswith("(Binary data")
