"""XMP embedded in copies of JPEG, TIFF and DNG files: read back by ExifTool and exiv2, the
image data byte for byte the original's."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, TiffImagePlugin

from processing.xmp_embed import CannotEmbed, copy_with_xmp, embeddable_kind
from processing.xmp_merge import merge_packets
from services.xmp_export import Pick, XmpOptions, sidecar_xml
from tests.factories import build_exif, encode, gradient_image, jpeg_bytes

EXIFTOOL = shutil.which("exiftool")
EXIV2 = shutil.which("exiv2")
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None and not os.environ.get("CI"), reason="exiftool is not installed"
)
needs_exiv2 = pytest.mark.skipif(
    EXIV2 is None and not os.environ.get("CI"), reason="exiv2 is not installed"
)
REJECTED = Pick(1, "IMG_0001.JPG", "Group 2", False, pick="reject", decided_by="user")
KEEPER = Pick(2, "IMG_0002.JPG", "Group 2", True)


def _exiftool(path: Path) -> dict[str, Any]:
    assert EXIFTOOL is not None
    out = subprocess.run(
        [EXIFTOOL, "-j", "-n", "-G1", "-a", str(path)], capture_output=True, text=True, check=True
    )
    entry: dict[str, Any] = json.loads(out.stdout)[0]
    return entry


def _embedded(original: bytes, name: str, pick: Pick, tmp_path: Path) -> Path:
    kind = embeddable_kind(original[:65536], name)
    assert kind is not None
    tmp_path.mkdir(parents=True, exist_ok=True)
    target = tmp_path / name
    with target.open("wb") as out:
        copy_with_xmp(kind, io.BytesIO(original), sidecar_xml(pick, XmpOptions()), out)
    return target


def _scan_data(jpeg: bytes) -> bytes:
    """Everything from the first SOS marker on: the entropy-coded image data."""
    at = 2
    while jpeg[at + 1] != 0xDA:
        at += 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big")
    return jpeg[at:]


@needs_exiftool
def test_a_jpeg_copy_carries_the_xmp_and_the_same_image_data(tmp_path: Path) -> None:
    exif = build_exif({0x010F: "Canon", 0x0110: "EOS R5"})
    original = jpeg_bytes(size=(96, 64), seed=3, exif=exif)
    copy = _embedded(original, "IMG_0001.JPG", REJECTED, tmp_path)

    data = copy.read_bytes()
    assert _scan_data(data) == _scan_data(original)  # not re-encoded: the same bytes
    assert len(data) > len(original)
    read = _exiftool(copy)
    assert read["XMP-xmp:Rating"] == -1  # Lightroom's "rejected"
    assert "XMP-xmp:Label" not in read
    assert read["XMP-pixal:DecidedBy"] == "user"
    assert read["XMP-lr:HierarchicalSubject"] == ["Pixal|Group 2", "Pixal|Rejected"]
    assert (read["IFD0:Make"], read["IFD0:Model"]) == ("Canon", "EOS R5")  # EXIF kept
    assert "Warning" not in read
    with Image.open(copy) as a, Image.open(io.BytesIO(original)) as b:
        assert a.tobytes() == b.tobytes()


@needs_exiftool
def test_the_xmp_a_jpeg_already_has_is_merged_not_lost(tmp_path: Path) -> None:
    source = tmp_path / "theirs.jpg"
    source.write_bytes(jpeg_bytes(seed=4))
    assert EXIFTOOL is not None
    subprocess.run(
        [
            EXIFTOOL,
            "-q",
            "-overwrite_original",
            "-XMP-dc:Title=Harbour at dawn",
            "-XMP-xmp:Rating=1",
            "-XMP-lr:HierarchicalSubject=Client|Smith",
            "-XMP-dc:Subject=Smith",
            str(source),
        ],
        check=True,
    )
    original = source.read_bytes()
    copy = _embedded(original, "IMG_0002.JPG", KEEPER, tmp_path / "out")

    read = _exiftool(copy)
    assert read["XMP-dc:Title"] == "Harbour at dawn"  # theirs, kept
    assert read["XMP-xmp:Rating"] == 5  # ours, replacing theirs
    assert read["XMP-lr:HierarchicalSubject"] == ["Client|Smith", "Pixal|Group 2", "Pixal|Keeper"]
    assert read["XMP-dc:Subject"] == ["Smith", "Pixal", "Group 2", "Keeper"]
    assert copy.read_bytes().count(b"http://ns.adobe.com/xap/1.0/\x00") == 1  # one packet
    assert _scan_data(copy.read_bytes()) == _scan_data(original)


def _tiff(dng: bool) -> bytes:
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[0x010F] = "Pixal"
    if dng:
        info[50706] = b"\x01\x04\x00\x00"  # DNGVersion 1.4.0.0
        info.tagtype[50706] = 1
    buffer = io.BytesIO()
    gradient_image((80, 60), seed=5).save(buffer, "TIFF", tiffinfo=info)
    return buffer.getvalue()


@needs_exiftool
@pytest.mark.parametrize(("name", "dng"), [("scan.tif", False), ("IMG_0003.DNG", True)])
def test_a_tiff_or_dng_copy_carries_the_xmp_in_tag_700(
    tmp_path: Path, name: str, *, dng: bool
) -> None:
    original = _tiff(dng)
    copy = _embedded(original, name, REJECTED, tmp_path)

    data = copy.read_bytes()
    assert data[8 : len(original)] == original[8:]  # only the IFD0 offset changed; appended
    read = _exiftool(copy)
    assert read["XMP-xmp:Rating"] == -1
    assert read["XMP-pixal:DecidedBy"] == "user"
    assert read["IFD0:Make"] == "Pixal"
    assert "Warning" not in read
    if dng:
        assert read["IFD0:DNGVersion"] == "1 4 0 0"
    with Image.open(copy) as a, Image.open(io.BytesIO(original)) as b:
        assert a.tobytes() == b.tobytes()

    # A second pass replaces our values in the file's tag 700 (merged), never adds another.
    again = tmp_path / "again" / name
    again.parent.mkdir()
    with again.open("wb") as out, copy.open("rb") as source:
        copy_with_xmp("tiff", source, sidecar_xml(KEEPER, XmpOptions()), out)
    read = _exiftool(again)
    assert read["XMP-xmp:Rating"] == 5
    assert read["XMP-lr:HierarchicalSubject"] == [
        "Pixal|Group 2",
        "Pixal|Rejected",
        "Pixal|Keeper",
    ]


@needs_exiv2
def test_exiv2_reads_the_embedded_rating(tmp_path: Path) -> None:
    assert EXIV2 is not None
    for name, original in (("a.jpg", jpeg_bytes(seed=6)), ("b.tif", _tiff(dng=False))):
        copy = _embedded(original, name, REJECTED, tmp_path)
        out = subprocess.run(
            [EXIV2, "-K", "Xmp.xmp.Rating", "-P", "v", str(copy)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == "-1", name


def test_proprietary_raw_and_other_formats_are_not_embedded() -> None:
    tiff = _tiff(dng=False)
    cr2 = tiff[:8] + b"CR\x02\x00" + tiff[12:]
    assert embeddable_kind(cr2, "IMG_0001.CR2") is None  # Canon's mark after the header
    assert embeddable_kind(tiff, "DSC_0001.NEF") is None  # a TIFF-based RAW by its name
    assert embeddable_kind(_tiff(dng=True), "DSC_0001.NEF") == "tiff"  # content says DNG
    assert embeddable_kind(encode(gradient_image(), "PNG"), "a.png") is None
    assert embeddable_kind(jpeg_bytes(), "odd-name.bin") == "jpeg"


def test_a_broken_file_is_refused_before_anything_is_written() -> None:
    packet = sidecar_xml(KEEPER, XmpOptions())
    with pytest.raises(CannotEmbed):
        copy_with_xmp("jpeg", io.BytesIO(jpeg_bytes()[:40]), packet, io.BytesIO())
    with pytest.raises(CannotEmbed):
        copy_with_xmp("tiff", io.BytesIO(b"II*\x00\xff\xff\xff\x00"), packet, io.BytesIO())


def test_merge_keeps_their_properties_in_attribute_form() -> None:
    theirs = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        b'xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" xmp:Rating="2" '
        b'crs:Exposure2012="+0.35"/></rdf:RDF></x:xmpmeta>'
    )
    merged = merge_packets(theirs, sidecar_xml(KEEPER, XmpOptions()))
    assert b'crs:Exposure2012="+0.35"' in merged  # their develop settings, untouched
    assert b'xmp:Rating="2"' not in merged
    assert b"<xmp:Rating>5</xmp:Rating>" in merged
