"""Real RAW files from exiv2's test suite (tests/data/exiv2/SOURCES.md): a real iPhone DNG that
LibRaw opens and develops (its pixel data pruned to zeros by exiv2's authors), and a real CR3's
metadata. Expected values are ExifTool 12.57's reading."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from processing.photo import load_oriented_rgb
from processing.raw import RawHeader
from processing.raw_metadata import extract_raw_metadata
from processing.validation import inspect_image_file

DATA = Path(__file__).parent.parent / "data" / "exiv2"


def test_a_real_iphone_dng_is_read_and_developed_upright() -> None:
    path = DATA / "IMG_1361.dng"
    inspected = inspect_image_file(path, max_pixels=50_000_000)
    assert (inspected.format, inspected.extension) == ("DNG", ".dng")
    meta = inspected.metadata
    assert (meta.camera_make, meta.camera_model) == ("Apple", "iPhone 12 Pro")
    assert (meta.width, meta.height, meta.orientation) == (4032, 3024, 6)
    # No preview: developed (LibRaw's half_size leaves a linear DNG whole), turned upright.
    # The picture is black: the tiles hold zeros.
    assert load_oriented_rgb(path, 1024).size == (3024, 4032)


def test_a_real_cr3s_metadata_comes_from_its_cmt_boxes() -> None:
    meta = extract_raw_metadata(DATA / "Canon-R6-pruned.CR3", RawHeader("CR3", 1, 1, 1))
    assert (meta.camera_make, meta.camera_model) == ("Canon", "Canon EOS R6")
    assert meta.camera_serial == "093022004357"
    assert meta.lens_model == "RF70-200mm F2.8 L IS USM"
    plus_two = timezone(timedelta(hours=2))
    assert meta.shot_at == datetime(2021, 5, 12, 12, 21, 21, 920_000, plus_two)


def test_libraw_reads_a_real_rw2s_size_and_pillow_its_metadata() -> None:
    path = Path(__file__).parent.parent / "data" / "exiftool" / "Panasonic.rw2"
    meta = inspect_image_file(path, max_pixels=50_000_000).metadata  # pixels stripped
    assert (meta.camera_make, meta.camera_model) == ("Panasonic", "DMC-LX3")
    assert (meta.width, meta.height, meta.orientation) == (3664, 2754, 1)
