"""extract_metadata on real files written by Pillow: EXIF, GPS, timestamps, XMP, damage."""

from __future__ import annotations

import io
import random
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import pytest
from PIL import Image
from PIL.ExifTags import GPS, IFD, Base
from PIL.PngImagePlugin import PngInfo

from processing.metadata_extraction import ImageMetadata, extract_metadata
from tests.factories import build_exif, encode, gradient_image, jpeg_bytes, rational

SIZE = (64, 48)


def _extract(data: bytes) -> ImageMetadata:
    with Image.open(io.BytesIO(data)) as img:
        return extract_metadata(img)


def _stored(data: bytes) -> tuple[dict[int, Any], dict[int, Any], dict[int, Any]]:
    """What Pillow itself reads back (IFD0, Exif IFD, GPS IFD): proof a test wrote what it means."""
    with Image.open(io.BytesIO(data)) as img:
        exif = img.getexif()
        return dict(exif), exif.get_ifd(IFD.Exif), exif.get_ifd(IFD.GPSInfo)


def _jpeg(
    base: dict[int, Any] | None = None,
    exif: dict[int, Any] | None = None,
    gps: dict[int, Any] | None = None,
) -> bytes:
    return jpeg_bytes(SIZE, exif=build_exif(base, exif, gps))


def _xmp_packet(description: str = "", extra: str = "", attributes: str = "") -> bytes:
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/" {attributes}>
   {description}{extra}
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
{" " * 200}
<?xpacket end="w"?>""".encode()


def _jpeg_with_xmp(packet: bytes, exif: Image.Exif | None = None) -> bytes:
    return encode(gradient_image(SIZE), "JPEG", exif, xmp=packet)


def _dms(degrees: int, minutes: int, seconds: float) -> tuple[Any, ...]:
    return (rational(degrees), rational(minutes), rational((round(seconds * 100), 100)))


FULL_EXIF = {
    Base.LensModel: "RF50mm F1.8 STM",
    Base.FocalLength: rational(50),
    Base.FNumber: rational((28, 10)),
    Base.ExposureTime: rational((1, 250)),
    Base.ISOSpeedRatings: 400,
}


def test_full_exif_round_trip() -> None:
    data = _jpeg({Base.Make: "Canon", Base.Model: "Canon EOS R5"}, FULL_EXIF)
    assert _stored(data)[1][Base.FNumber] == 2.8

    meta = _extract(data)

    assert (meta.width, meta.height) == SIZE
    assert meta.camera_make == "Canon"
    assert meta.camera_model == "Canon EOS R5"
    assert meta.lens_model == "RF50mm F1.8 STM"
    assert meta.focal_length == "50mm"
    assert meta.f_number == 2.8
    assert meta.exposure_time == "1/250"
    assert meta.iso == 400


@pytest.mark.parametrize(
    ("exposure", "expected"),
    [
        (rational(2), "2s"),
        (rational(30), "30s"),
        (rational((1, 2)), "0.5s"),
        (rational((13, 10)), "1.3s"),
        (rational((1, 3)), "1/3"),
        (rational((1, 8000)), "1/8000"),
        (rational((10, 2500)), "1/250"),
        (rational(0), None),
    ],
)
def test_exposure_time_formats(exposure: Any, expected: str | None) -> None:
    assert _extract(_jpeg(exif={Base.ExposureTime: exposure})).exposure_time == expected


@pytest.mark.parametrize(
    ("focal", "expected"), [(rational(50), "50mm"), (rational((43, 10)), "4.3mm"), (0, None)]
)
def test_focal_length_formats(focal: Any, expected: str | None) -> None:
    assert _extract(_jpeg(exif={Base.FocalLength: focal})).focal_length == expected


def test_iso_stored_as_several_values_takes_the_first() -> None:
    data = _jpeg(exif={Base.ISOSpeedRatings: (800, 1600)})
    assert _stored(data)[1][Base.ISOSpeedRatings] == (800, 1600)

    assert _extract(data).iso == 800


@pytest.mark.parametrize(
    ("gps", "expected"),
    [
        (  # Eiffel Tower: north, east
            {1: "N", 2: _dms(48, 51, 29.52), 3: "E", 4: _dms(2, 17, 40.2)},
            (48.8582, 2.2945),
        ),
        (  # Rio de Janeiro: south, west
            {1: "S", 2: _dms(22, 54, 30), 3: "W", 4: _dms(43, 11, 47)},
            (-22.9083333, -43.1963889),
        ),
    ],
)
def test_gps_to_decimal_degrees(gps: dict[int, Any], expected: tuple[float, float]) -> None:
    meta = _extract(_jpeg(gps=gps))

    assert (meta.latitude, meta.longitude) == pytest.approx(expected, abs=1e-7)


def test_gps_zero_denominator_drops_the_position_and_keeps_the_rest() -> None:
    gps = {
        GPS.GPSLatitudeRef: "N",
        GPS.GPSLatitude: (rational(48), rational((51, 0)), rational(0)),
        GPS.GPSLongitudeRef: "E",
        GPS.GPSLongitude: _dms(2, 17, 40.2),
    }
    data = _jpeg({Base.Make: "Nikon"}, FULL_EXIF, gps=gps)
    stored_minutes = _stored(data)[2][GPS.GPSLatitude][1]
    assert stored_minutes.denominator == 0  # Pillow wrote 51/0 as is (and reads it as NaN)

    meta = _extract(data)

    assert (meta.latitude, meta.longitude) == (None, None)
    assert meta.camera_make == "Nikon"
    assert meta.focal_length == "50mm"
    assert meta.iso == 400


def test_gps_out_of_range_is_dropped() -> None:
    gps = {1: "N", 2: _dms(95, 0, 0), 3: "E", 4: _dms(2, 17, 40.2)}

    meta = _extract(_jpeg(gps=gps))

    assert (meta.latitude, meta.longitude) == (None, None)


@pytest.mark.parametrize(("offset", "hours"), [("+02:00", 2), ("-05:00", -5), ("+05:45", 5.75)])
def test_shot_at_uses_the_recorded_offset(offset: str, hours: float) -> None:
    exif = {Base.DateTimeOriginal: "2023:06:01 12:34:56", Base.OffsetTimeOriginal: offset}

    meta = _extract(_jpeg(exif=exif))
    shot_at = meta.shot_at

    assert shot_at == datetime(2023, 6, 1, 12, 34, 56, tzinfo=timezone(timedelta(hours=hours)))
    assert shot_at is not None
    assert shot_at.utcoffset() == timedelta(hours=hours)
    assert meta.shot_at_offset_minutes == hours * 60


def test_shot_at_without_offset_keeps_the_wall_clock_and_says_no_offset() -> None:
    meta = _extract(_jpeg(exif={Base.DateTimeOriginal: "2023:06:01 12:34:56"}))
    shot_at = meta.shot_at

    # Stored as if UTC (for ordering); the missing offset is recorded as None, not as +00:00.
    assert shot_at == datetime(2023, 6, 1, 12, 34, 56, tzinfo=UTC)
    assert shot_at is not None
    assert meta.shot_at_offset_minutes is None


def test_an_explicit_utc_offset_is_kept_apart_from_no_offset() -> None:
    exif = {Base.DateTimeOriginal: "2023:06:01 12:34:56", Base.OffsetTimeOriginal: "+00:00"}

    assert _extract(_jpeg(exif=exif)).shot_at_offset_minutes == 0


def test_shot_at_keeps_sub_seconds() -> None:
    exif = {
        Base.DateTimeOriginal: "2023:06:01 12:34:56",
        Base.SubsecTimeOriginal: "042",
        Base.OffsetTimeOriginal: "+02:00",
    }

    shot_at = _extract(_jpeg(exif=exif)).shot_at

    assert shot_at is not None
    assert shot_at.microsecond == 42_000


def test_shot_at_falls_back_to_the_next_date_with_its_own_offset() -> None:
    base = {Base.DateTime: "2024:01:02 03:04:05"}
    exif = {
        Base.DateTimeOriginal: "0000:00:00 00:00:00",
        Base.OffsetTimeOriginal: "+02:00",
        Base.OffsetTime: "-03:00",
    }

    meta = _extract(_jpeg(base, exif))

    assert meta.shot_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-3)))
    assert meta.shot_at_offset_minutes == -180


@pytest.mark.parametrize("date", ["0000:00:00 00:00:00", "garbage", "2023:13:45 25:61:00", ""])
def test_invalid_date_is_none_and_other_fields_survive(date: str) -> None:
    data = _jpeg({Base.Make: "Fujifilm"}, {**FULL_EXIF, Base.DateTimeOriginal: date})

    meta = _extract(data)

    assert meta.shot_at is None
    assert meta.camera_make == "Fujifilm"
    assert meta.exposure_time == "1/250"


def test_png_without_exif_has_only_its_size() -> None:
    meta = _extract(encode(gradient_image(SIZE), "PNG"))

    assert meta == ImageMetadata(width=64, height=48)


def test_tiff_without_tags_has_only_its_size() -> None:
    meta = _extract(encode(gradient_image(SIZE), "TIFF"))

    assert meta == ImageMetadata(width=64, height=48)


def test_orientation_is_read_and_size_is_the_stored_one() -> None:
    meta = _extract(_jpeg({Base.Orientation: 6}))

    assert meta.orientation == 6
    assert (meta.width, meta.height) == SIZE


def test_tiff_orientation_and_stored_size_before_loading() -> None:
    # Pillow reports an unloaded TIFF's size already turned by its orientation.
    data = encode(gradient_image(SIZE), "TIFF", build_exif({Base.Orientation: 6}))
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (48, 64)

        meta = extract_metadata(img)

    assert meta.orientation == 6
    assert (meta.width, meta.height) == SIZE


def test_loaded_tiff_is_already_upright() -> None:
    # Loading a TIFF turns its pixels and drops the tag: what is left is upright and consistent.
    data = encode(gradient_image(SIZE), "TIFF", build_exif({Base.Orientation: 6}))
    with Image.open(io.BytesIO(data)) as img:
        img.load()

        meta = extract_metadata(img)

    assert meta.orientation is None
    assert (meta.width, meta.height) == (48, 64)


@pytest.mark.parametrize("orientation", [0, 9])
def test_invalid_orientation_is_none(orientation: int) -> None:
    assert _extract(_jpeg({Base.Orientation: orientation})).orientation is None


@pytest.mark.parametrize(("rating", "expected"), [(4, 4), (0, 0), (7, None)])
def test_exif_rating(rating: int, expected: int | None) -> None:
    assert _extract(_jpeg({Base.Rating: rating})).rating == expected


def test_xp_keywords_become_tags() -> None:
    keywords = "beach; sunset;;family;beach\x00".encode("utf-16-le")
    data = _jpeg({Base.XPKeywords: keywords})
    assert _stored(data)[0][Base.XPKeywords] == keywords

    assert _extract(data).tags == ["beach", "sunset", "family"]


def test_xmp_subject_description_and_rating() -> None:
    packet = _xmp_packet(
        description="""<dc:description><rdf:Alt>
            <rdf:li xml:lang="fr">Coucher de soleil</rdf:li>
            <rdf:li xml:lang="x-default">Sunset over the bay</rdf:li>
          </rdf:Alt></dc:description>""",
        extra="<dc:subject><rdf:Bag><rdf:li>sunset</rdf:li><rdf:li>Île de Ré</rdf:li>"
        "</rdf:Bag></dc:subject>",
        attributes='xmp:Rating="5"',
    )
    data = _jpeg_with_xmp(packet)
    with Image.open(io.BytesIO(data)) as img:
        assert img.info["xmp"] == packet

    meta = _extract(data)

    assert meta.caption == "Sunset over the bay"
    assert meta.tags == ["sunset", "Île de Ré"]
    assert meta.rating == 5


def test_png_xmp_text_chunk() -> None:
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp_packet(attributes='xmp:Rating="3.0"').decode())

    meta = _extract(encode(gradient_image(SIZE), "PNG", pnginfo=info))

    assert meta.rating == 3


def test_xmp_rating_as_element_and_rejected() -> None:
    data = _jpeg_with_xmp(_xmp_packet(extra="<xmp:Rating>-1</xmp:Rating>"))

    assert _extract(data).rating == -1


def test_xmp_wins_over_exif() -> None:
    packet = _xmp_packet(
        description='<dc:description><rdf:Alt><rdf:li xml:lang="x-default">Edited caption'
        "</rdf:li></rdf:Alt></dc:description>",
        attributes='xmp:Rating="2"',
    )
    exif = build_exif({Base.ImageDescription: "Camera caption", Base.Rating: 5})

    meta = _extract(_jpeg_with_xmp(packet, exif))

    assert meta.caption == "Edited caption"
    assert meta.rating == 2


@pytest.mark.parametrize(
    "packet",
    [
        b"<x:xmpmeta><rdf:RDF>not closed",
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>',
        b"\xff\xfe garbage \x00",
    ],
)
def test_broken_xmp_is_ignored_and_exif_survives(packet: bytes) -> None:
    exif = build_exif({Base.Make: "Sony", Base.ImageDescription: "Harbour", Base.Rating: 3})

    meta = _extract(_jpeg_with_xmp(packet, exif))

    assert (meta.camera_make, meta.caption, meta.rating, meta.tags) == ("Sony", "Harbour", 3, None)


def test_strings_are_cleaned_and_decoded_as_utf8() -> None:
    base = {
        Base.Make: "  Canon\x00\x00 ",
        Base.Model: "   ",
        # Bytes reach the file untouched; Pillow reads ASCII tags back as Latin-1.
        Base.ImageDescription: "Café au lait".encode(),
    }
    data = _jpeg(base, {Base.LensModel: b"\x00\x00"})
    assert _stored(data)[0][Base.ImageDescription] == "CafÃ© au lait"

    meta = _extract(data)

    assert meta.camera_make == "Canon"
    assert meta.camera_model is None
    assert meta.lens_model is None
    assert meta.caption == "Café au lait"


def test_camera_placeholder_caption_is_dropped() -> None:
    meta = _extract(_jpeg({Base.ImageDescription: "OLYMPUS DIGITAL CAMERA         "}))

    assert meta.caption is None


def test_broken_gps_pointer_keeps_ifd0_fields() -> None:
    gps = {1: "N", 2: _dms(48, 51, 29.52), 3: "E", 4: _dms(2, 17, 40.2)}
    blob = build_exif({Base.Make: "Leica"}, gps_ifd=gps).tobytes()
    assert _extract(_jpeg_with_raw_exif(blob)).latitude == pytest.approx(48.8582)
    entry = blob.index(b"\x88\x25\x00\x04\x00\x00\x00\x01")  # GPSInfo, LONG, 1 (big-endian)
    broken = blob[: entry + 8] + b"\x7f\xff\xff\xf0" + blob[entry + 12 :]  # points past the end

    meta = _extract(_jpeg_with_raw_exif(broken))

    assert meta.camera_make == "Leica"
    assert (meta.latitude, meta.longitude) == (None, None)


def test_tag_with_too_many_values_loses_only_itself() -> None:
    blob = build_exif({Base.Orientation: 6, Base.Make: "Pentax"}).tobytes()
    entry = blob.index(b"\x01\x12\x00\x03\x00\x00\x00\x01")  # Orientation, SHORT, count 1
    broken = blob[: entry + 4] + b"\x00\x00\x00\x02" + blob[entry + 8 :]

    # Pillow warns about the extra value when it first reads the tag; pytest's filterwarnings
    # makes that an exception, as `python -W error` would.
    meta = _extract(_jpeg_with_raw_exif(broken))

    assert meta.orientation is None
    assert meta.camera_make == "Pentax"


# "ignore" is how production runs (Pillow warns about damaged IFDs and carries on); "error" is
# the strictest case, where every such warning is an exception inside Pillow.
@pytest.mark.parametrize("warning_filter", ["ignore", "error"])
def test_corrupt_exif_never_raises(warning_filter: Literal["ignore", "error"]) -> None:
    exif = build_exif(
        {Base.Make: "Canon", Base.Orientation: 6, Base.Rating: 3},
        {**FULL_EXIF, Base.DateTimeOriginal: "2023:06:01 12:34:56"},
        {1: "S", 2: _dms(22, 54, 30), 3: "W", 4: _dms(43, 11, 47)},
    )
    blob = exif.tobytes()
    rng = random.Random(1234)
    for _ in range(300):
        damaged = bytearray(blob)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(6, len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(6, len(damaged))]
        with warnings.catch_warnings():
            # Opening a JPEG already parses its EXIF (for the DPI); only extraction is tested.
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(_jpeg_with_raw_exif(bytes(damaged))))
        with img, warnings.catch_warnings():
            warnings.simplefilter(warning_filter)
            meta = extract_metadata(img)

        assert (meta.width, meta.height) == SIZE


def _jpeg_with_raw_exif(blob: bytes) -> bytes:
    buffer = io.BytesIO()
    gradient_image(SIZE).save(buffer, "JPEG", exif=blob)
    return buffer.getvalue()


def test_as_dict_has_every_field() -> None:
    meta = ImageMetadata(width=1, height=2, tags=["a"])

    as_dict = meta.as_dict()

    assert list(as_dict) == [
        "width",
        "height",
        "orientation",
        "shot_at",
        "shot_at_offset_minutes",
        "latitude",
        "longitude",
        "camera_make",
        "camera_model",
        "camera_serial",
        "lens_model",
        "focal_length",
        "f_number",
        "exposure_time",
        "iso",
        "caption",
        "tags",
        "rating",
        "exposure_bias",
        "exposure_mode",
        "focus_distance",
    ]
    assert as_dict["tags"] == ["a"]
    assert as_dict["tags"] is not meta.tags


def test_exposure_bias_and_mode_are_read() -> None:
    exif = build_exif(exif_ifd={0x9204: rational((-2, 3)), 0xA402: 2})
    with Image.open(io.BytesIO(jpeg_bytes(exif=exif))) as img:
        meta = extract_metadata(img)
    assert meta.exposure_bias == -0.67
    assert meta.exposure_mode == 2


def test_absurd_exposure_bias_and_mode_are_dropped() -> None:
    exif = build_exif(exif_ifd={0x9204: rational((99, 1)), 0xA402: 7})
    with Image.open(io.BytesIO(jpeg_bytes(exif=exif))) as img:
        meta = extract_metadata(img)
    assert (meta.exposure_bias, meta.exposure_mode) == (None, None)


@pytest.mark.parametrize(
    ("written", "read"),
    [((3, 2), 1.5), ((0, 1), None), ((0xFFFFFFFF, 1), None), ((1, 0), None)],
)
def test_subject_distance_is_the_focus_distance_unless_unknown_or_infinite(
    written: tuple[int, int], read: float | None
) -> None:
    exif = build_exif(exif_ifd={Base.SubjectDistance: rational(written)})
    with Image.open(io.BytesIO(jpeg_bytes(exif=exif))) as img:
        assert extract_metadata(img).focus_distance == read
