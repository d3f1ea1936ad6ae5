"""Camera RAWs: recognised by content, decoded by LibRaw from the preview or at half size,
turned upright, their metadata read; videos told apart from photos."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from processing.metadata_extraction import ImageMetadata
from processing.photo import load_oriented_rgb
from processing.raw import RawHeader, load_raw_rgb, raw_kind
from processing.raw_metadata import extract_raw_metadata
from processing.sniff import sniff_file
from processing.validation import InvalidImage, NotAPhoto, inspect_image_file
from tests.factories import encode, gradient_image
from tests.raw_factory import DngSpec, dng_bytes, scene, write_dng

MAX_PIXELS = 250_000_000


def likeness(image: Image.Image, reference: Image.Image) -> float:
    """Correlation of the grey levels of two pictures (1: the same picture)."""
    a = np.asarray(image.convert("L").resize((96, 64)), dtype=np.float64).ravel()
    b = np.asarray(reference.convert("L").resize((96, 64)), dtype=np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def test_dng_is_inspected_as_a_raw_with_its_metadata(tmp_path: Path) -> None:
    path = write_dng(tmp_path / "upload", DngSpec(orientation=6))
    inspected = inspect_image_file(path, MAX_PIXELS)
    assert (inspected.format, inspected.extension) == ("DNG", ".dng")
    assert inspected.mime_type == "image/x-adobe-dng"
    meta = inspected.metadata
    # The sensor's size, not the 256 x 171 thumbnail in IFD0 that Pillow would read.
    assert (meta.width, meta.height, meta.orientation) == (600, 400, 6)
    assert meta.shot_at == datetime(2024, 5, 6, 7, 8, 9, 250_000, timezone(timedelta(hours=2)))
    assert meta.shot_at_offset_minutes == 120
    assert (meta.camera_make, meta.camera_model) == ("Testmaker", "Raw Body X1")
    assert meta.camera_serial == "SN-4242"
    assert meta.lens_model == "Test 50mm F1.8"
    assert exposure(meta) == (400, "1/250", 2.8, "50mm")
    assert meta.caption is None


def exposure(meta: ImageMetadata) -> tuple[object, ...]:
    """ISO, shutter, aperture and focal length as read."""
    return (meta.iso, meta.exposure_time, meta.f_number, meta.focal_length)


def test_a_raw_larger_than_the_pixel_limit_is_refused(tmp_path: Path) -> None:
    path = write_dng(tmp_path / "a.dng", DngSpec(size=(600, 400)))
    with pytest.raises(InvalidImage, match="more pixels than the limit of 200000"):
        inspect_image_file(path, 200_000)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_a_truncated_dng_is_refused_or_decodes(tmp_path: Path, keep: float) -> None:
    data = dng_bytes(DngSpec())
    path = tmp_path / "cut.dng"
    path.write_bytes(data[: int(len(data) * keep)])
    outcome: InvalidImage | str
    try:
        outcome = inspect_image_file(path, MAX_PIXELS).format
    except InvalidImage as exc:
        outcome = exc
    if isinstance(outcome, InvalidImage):
        message = str(outcome)
        assert "DNG" in message or "could not be decoded" in message
        assert str(tmp_path) not in message
    else:
        assert outcome == "DNG"
        assert load_oriented_rgb(path, 256).mode == "RGB"


def test_a_tiff_with_a_camera_make_is_still_a_tiff(tmp_path: Path) -> None:
    path = tmp_path / "export.tif"
    gradient_image((120, 80)).save(path, "TIFF", tiffinfo={271: "Canon", 272: "EOS R5"})
    assert raw_kind(path) is None
    inspected = inspect_image_file(path, MAX_PIXELS)
    assert (inspected.format, inspected.extension) == ("TIFF", ".tif")


def _tiff_exif(tags: dict[int, object], exif_tags: dict[int, object], order: str = "<") -> bytes:
    """A little TIFF holding `tags` in IFD0 and `exif_tags` in its Exif IFD."""
    exif = Image.Exif()
    exif.endian = order
    for tag, value in tags.items():
        exif[tag] = value
    exif.get_ifd(0x8769).update(exif_tags)
    return exif.tobytes().removeprefix(b"Exif\x00\x00")


CAMERA = {271: "Panasonic", 272: "DC-G9", 274: 8}
EXPOSURE = {0x9003: "2023:01:02 03:04:05", 0x9291: "5", 0x9011: "-05:00", 0xA431: "B0DY"}


def _header(kind: str) -> RawHeader:
    return RawHeader(kind, 5184, 3888, 8)


@pytest.mark.parametrize(("magic", "kind"), [(b"IIU\x00", "RW2"), (b"IIRO", "ORF")])
def test_orf_and_rw2_are_tiffs_with_a_magic_of_their_own(
    tmp_path: Path, magic: bytes, kind: str
) -> None:
    data = _tiff_exif(CAMERA, EXPOSURE)
    assert data[:4] == b"II*\x00"
    path = tmp_path / "raw"
    path.write_bytes(magic + data[4:])
    assert sniff_file(path).raw_kind == kind
    meta = extract_raw_metadata(path, _header(kind))
    assert (meta.camera_make, meta.camera_model, meta.camera_serial) == (
        "Panasonic",
        "DC-G9",
        "B0DY",
    )
    assert meta.shot_at == datetime(2023, 1, 2, 3, 4, 5, 500_000, timezone(timedelta(hours=-5)))
    assert (meta.width, meta.height, meta.orientation) == (5184, 3888, 8)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def cr3_bytes() -> bytes:
    """An ISO-BMFF file laid out as Canon's CR3: EXIF in CMT boxes of the 'uuid' box."""
    ftyp = _box(b"ftyp", b"crx \x00\x00\x00\x01crx isom")
    cmt1 = _box(b"CMT1", _tiff_exif({271: "Canon", 272: "Canon EOS R6"}, {}))
    exif_ifd = Image.Exif()
    exif_ifd.endian = "<"
    for tag, value in {**EXPOSURE, 0x8827: 3200, 0xA434: "RF24-105mm F4 L IS USM"}.items():
        exif_ifd[tag] = value
    cmt2 = _box(b"CMT2", exif_ifd.tobytes().removeprefix(b"Exif\x00\x00"))
    uuid = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
    moov = _box(
        b"moov", _box(b"uuid", uuid + _box(b"CNCV", b"CanonCR3_001/00.09.00") + cmt1 + cmt2)
    )
    return ftyp + moov + _box(b"mdat", b"\x00" * 64)


def test_cr3_metadata_comes_from_its_cmt_boxes(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.CR3"
    path.write_bytes(cr3_bytes())
    assert sniff_file(path).raw_kind == "CR3"
    meta = extract_raw_metadata(path, _header("CR3"))
    assert (meta.camera_make, meta.camera_model) == ("Canon", "Canon EOS R6")
    assert (meta.camera_serial, meta.iso) == ("B0DY", 3200)
    assert meta.lens_model == "RF24-105mm F4 L IS USM"
    assert meta.shot_at == datetime(2023, 1, 2, 3, 4, 5, 500_000, timezone(timedelta(hours=-5)))


def raf_bytes() -> bytes:
    """Fujifilm's RAF layout: a header pointing at a JPEG preview that carries the EXIF."""
    exif = Image.Exif()
    exif[271], exif[272] = "FUJIFILM", "X-T5"
    exif.get_ifd(0x8769).update({**EXPOSURE, 0x829A: TiffImagePlugin.IFDRational(1, 500)})
    jpeg = encode(gradient_image((160, 120)), "JPEG", exif=exif.tobytes())
    header = b"FUJIFILMCCD-RAW 0201FF383501" + b"X-T5".ljust(32, b"\0") + b"\0" * 24
    assert len(header) == 84
    offset = 84 + 8 + 8
    return header + struct.pack(">II", offset, len(jpeg)) + b"\0" * 8 + jpeg


def test_raf_metadata_comes_from_its_preview_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "DSCF0001.RAF"
    path.write_bytes(raf_bytes())
    assert sniff_file(path).raw_kind == "RAF"
    meta = extract_raw_metadata(path, _header("RAF"))
    assert (meta.camera_make, meta.camera_model) == ("FUJIFILM", "X-T5")
    assert (meta.exposure_time, meta.camera_serial) == ("1/500", "B0DY")
    assert meta.shot_at_offset_minutes == -300


def test_damaged_raw_containers_give_no_metadata_and_no_error(tmp_path: Path) -> None:
    for name, data in [("cr3", cr3_bytes()[:60]), ("raf", raf_bytes()[:90] + b"\xff" * 8)]:
        path = tmp_path / name
        path.write_bytes(data)
        kind = sniff_file(path).raw_kind
        assert kind is not None
        meta = extract_raw_metadata(path, _header(kind))
        assert meta.camera_make is None
        assert meta.width == 5184


def _bmff(major: bytes, *compatible: bytes) -> bytes:
    return _box(b"ftyp", major + b"\x00\x00\x02\x00" + b"".join(compatible)) + _box(
        b"mdat", b"\x00" * 300
    )


VIDEOS = [
    pytest.param(_bmff(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), id="mp4"),
    pytest.param(_bmff(b"qt  ", b"qt  "), id="mov"),
    pytest.param(_bmff(b"mp42", b"mp42", b"isom"), id="mp4-v2"),
    pytest.param(b"RIFF\x00\x10\x00\x00AVI LIST" + b"\x00" * 300, id="avi"),
    pytest.param(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + b"\x00" * 300, id="mkv"),
]


@pytest.mark.parametrize("data", VIDEOS)
def test_a_video_is_not_a_photo(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "clip.jpg"
    path.write_bytes(data)
    with pytest.raises(NotAPhoto, match="a video, not a photo"):
        inspect_image_file(path, MAX_PIXELS)


def test_heic_and_gif_are_not_taken_for_videos(tmp_path: Path) -> None:
    from tests.factories import heic_bytes

    for name, data in [("a.heic", heic_bytes()), ("a.gif", encode(gradient_image(), "GIF"))]:
        path = tmp_path / name
        path.write_bytes(data)
        assert sniff_file(path).video is None
        assert inspect_image_file(path, MAX_PIXELS).format in ("HEIF", "GIF")


def test_the_preview_jpeg_orientation_is_ignored_for_the_raws(tmp_path: Path) -> None:
    # The preview JPEG's own EXIF says "turn 90 degrees"; the RAW says upright: upright, as
    # LibRaw's orientation is the one that holds for the photo.
    spec = DngSpec(preview_size=(1200, 800), orientation=1, preview_orientation=6, seed=5)
    path = write_dng(tmp_path / "a.dng", spec)
    picture = load_raw_rgb(path, 256)
    assert picture.width > picture.height
    assert likeness(picture, scene(spec.size, 5)) > 0.9
