"""Body serials from maker notes, on real camera files from ExifTool's test suite
(tests/data/exiftool/SOURCES.md): the expected values are the ones ExifTool 12.57 reports."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from processing.maker_notes import exif_blob_serial
from processing.metadata_extraction import ImageMetadata, extract_metadata
from processing.raw import RawHeader
from processing.raw_metadata import extract_raw_metadata
from processing.sniff import sniff_file

DATA = Path(__file__).parent.parent / "data" / "exiftool"

# Pillow warns "Metadata Warning, tag 33723 had too many entries" on the D70's IPTC tag; in
# production warnings are not errors and the rest of the IFD is read, as here.
pytestmark = pytest.mark.filterwarnings("ignore:Metadata Warning:UserWarning")


def _metadata(name: str) -> ImageMetadata:
    path = DATA / name
    kind = sniff_file(path).raw_kind
    if kind is None:
        with Image.open(path) as img:
            return extract_metadata(img)
    # LibRaw cannot read every one of these stripped files; the size is not under test.
    return extract_raw_metadata(path, RawHeader(kind, 1, 1, 1))


@pytest.mark.parametrize(
    ("name", "serial"),
    [
        ("CanonRaw.cr2", "0123456789"),  # Canon 0x000C, printed "%.10u" as ExifTool does
        ("Canon.jpg", "0560018150"),
        ("Canon1DmkIII.jpg", "500292"),  # EOS-1D: "%.6u"; 0x000C wins over 0x0096 G002669
        ("FujiFilm.raf", "FPX20582698 592D313134360702198C0020100A84"),  # Fuji 0x0010
        ("Nikon.nef", "12345678"),  # Nikon 0x00A0 (a D70 has no 0x001D)
        ("NikonD2Hs.jpg", "3001006"),
        ("NikonD70.jpg", "NO= 20025585"),
        ("CanonRaw.cr3", "613040000565"),  # Exif BodySerialNumber wins over the maker note
        ("DNG.dng", "012345678"),  # DNG CameraSerialNumber
        ("FujiFilm.jpg", None),  # an old Fuji maker note without 0x0010
        ("Panasonic.rw2", None),
    ],
)
def test_the_body_serial_is_the_one_exiftool_reads(name: str, serial: str | None) -> None:
    assert _metadata(name).camera_serial == serial


@pytest.mark.parametrize(
    ("name", "make", "model", "shot_at"),
    [
        ("CanonRaw.cr2", "Canon", "Canon EOS 350D DIGITAL", datetime(2005, 8, 3, 18, 59, 18)),
        ("CanonRaw.cr3", "Canon", "Canon EOS M50", datetime(2018, 2, 21, 12, 8, 56, 210_000)),
        ("FujiFilm.raf", "FUJIFILM", "FinePix S5Pro", datetime(2007, 5, 22, 13, 58, 30)),
        ("Nikon.nef", "NIKON CORPORATION", "NIKON D70", datetime(2004, 6, 9, 16, 2, 35)),
        ("Panasonic.rw2", "Panasonic", "DMC-LX3", datetime(2008, 8, 6, 15, 21, 56)),
        ("DNG.dng", "Canon", "Canon EOS 350D DIGITAL", datetime(2005, 8, 3, 18, 59, 18)),
    ],
)
def test_real_raw_metadata(name: str, make: str, model: str, shot_at: datetime) -> None:
    meta = _metadata(name)
    assert (meta.camera_make, meta.camera_model) == (make, model)
    assert meta.shot_at == shot_at.replace(tzinfo=UTC)


def test_a_cr3_without_an_exif_serial_reads_canons_maker_note(tmp_path: Path) -> None:
    data = (DATA / "CanonRaw.cr3").read_bytes()
    assert data.count(b"613040000565") == 1
    path = tmp_path / "IMG_0001.CR3"
    path.write_bytes(data.replace(b"613040000565", b"\x00" * 12))  # a blank BodySerialNumber
    meta = extract_raw_metadata(path, RawHeader("CR3", 6024, 4020, 1))
    assert meta.camera_serial == "CG0156580"  # CMT3's InternalSerialNumber, 0x0096
    assert meta.iso == 12800


@pytest.mark.parametrize("name", ["Canon.jpg", "Canon1DmkIII.jpg", "NikonD70.jpg"])
def test_a_damaged_maker_note_gives_no_serial_and_no_error(name: str) -> None:
    with Image.open(DATA / name) as img:
        blob = img.info["exif"]
    assert exif_blob_serial(blob)
    for end in range(0, len(blob), 7):
        exif_blob_serial(blob[:end])  # never raises
    rng = random.Random(21)
    for _ in range(300):
        damaged = bytearray(blob)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        exif_blob_serial(bytes(damaged))
