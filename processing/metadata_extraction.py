"""Photo metadata (size, EXIF, XMP) read with Pillow.

Every field is read on its own: a malformed tag gives None for that field and never loses the
others, and no input image makes `extract_metadata` raise. Where XMP and EXIF both carry a
caption, keywords or a rating, XMP wins (the Metadata Working Group's rule: editors such as
Lightroom update XMP, while the EXIF copy is often what the camera wrote).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from numbers import Real
from typing import Any, ParamSpec, TypeVar
from xml.etree import ElementTree

from PIL import Image, TiffImagePlugin
from PIL.ExifTags import GPS, IFD, Base

from processing.maker_notes import exif_blob_serial, with_body_serial

P = ParamSpec("P")
T = TypeVar("T")

# What reading one tag can raise; anything else is a bug worth seeing. Pillow unpacks a tag's
# bytes on first access, which can fail with struct.error or warn (an error under -W error).
_FIELD_ERRORS = (
    ValueError,
    TypeError,
    ZeroDivisionError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    struct.error,
    UserWarning,
)

# (date, sub-seconds, UTC offset) tags, from the moment of capture to the last file change.
_TIMESTAMP_TAGS = (
    (Base.DateTimeOriginal, Base.SubsecTimeOriginal, Base.OffsetTimeOriginal),
    (Base.DateTimeDigitized, Base.SubsecTimeDigitized, Base.OffsetTimeDigitized),
    (Base.DateTime, Base.SubsecTime, Base.OffsetTime),
)
# DNG's CameraSerialNumber (IFD0), where a DNG carries the body's serial.
_DNG_CAMERA_SERIAL = 0xC62F
# Beyond this many metres SubjectDistance means infinity (written as 0xFFFFFFFF / 1).
MAX_FOCUS_DISTANCE = 100_000.0
_DATE = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})$")

# Descriptions some cameras stamp on every shot; showing them as a caption is noise.
_CAMERA_CAPTIONS = {
    "OLYMPUS DIGITAL CAMERA",
    "SONY DSC",
    "DIGITAL CAMERA",
    "EXIF_JPEG_PICTURE",
    "KONICA MINOLTA DIGITAL CAMERA",
    "MINOLTA DIGITAL CAMERA",
    "SAMSUNG DIGITAL CAMERA",
}

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_XMP = "{http://ns.adobe.com/xap/1.0/}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@dataclass(frozen=True, slots=True)
class ImageMetadata:
    width: int | None = None  # stored pixels, before orientation
    height: int | None = None
    orientation: int | None = None  # EXIF 1..8
    shot_at: datetime | None = None  # always timezone-aware
    shot_at_offset_minutes: int | None = None  # the recorded UTC offset; None: none recorded
    latitude: float | None = None  # decimal degrees, south negative
    longitude: float | None = None  # decimal degrees, west negative
    camera_make: str | None = None
    camera_model: str | None = None
    camera_serial: str | None = None  # the body's serial number (EXIF BodySerialNumber)
    lens_model: str | None = None
    focal_length: str | None = None  # "50mm", "4.3mm"
    f_number: float | None = None  # 2.8
    exposure_time: str | None = None  # "1/250", "0.5s", "2s"
    iso: int | None = None
    caption: str | None = None
    tags: list[str] | None = None
    rating: int | None = None  # 0..5 stars, -1 rejected
    exposure_bias: float | None = None  # exposure compensation in EV (ExposureBiasValue)
    exposure_mode: int | None = None  # ExposureMode: 0 auto, 1 manual, 2 auto bracket
    focus_distance: float | None = None  # metres focused at (SubjectDistance); None: unknown

    def as_dict(self) -> dict[str, object]:
        """The fields by name (a copy: changing it leaves this object alone)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Sources:
    ifd0: Mapping[int, Any]
    exif: Mapping[int, Any]
    gps: Mapping[int, Any]
    xmp: ElementTree.Element | None

    def get(self, tag: int) -> Any:
        # IFD0 and Exif-IFD tag numbers never collide, and some writers put Exif tags in IFD0.
        value = self.ifd0.get(tag)
        return value if value is not None else self.exif.get(tag)


def extract_metadata(img: Image.Image) -> ImageMetadata:
    """Size, EXIF and XMP metadata of an opened image; unreadable fields are None.

    `shot_at` is always timezone-aware: the offset recorded next to the chosen date
    (OffsetTimeOriginal, ...) when there is one, otherwise UTC is assumed. For TIFF, call this
    before `img.load()`: Pillow applies and then drops the orientation of a TIFF when loading it.
    """
    src = _read_sources(img)
    orientation = _safe(_orientation, src)
    width, height = _stored_size(img, orientation)
    return _from_sources(src, (width, height), orientation)


def metadata_from_tags(
    ifd0: Mapping[int, Any],
    exif: Mapping[int, Any],
    gps: Mapping[int, Any],
    size: tuple[int, int],
    orientation: int,
) -> ImageMetadata:
    """Metadata from EXIF tags read out of a container Pillow does not open (a RAW's IFDs),
    for a picture of `size` (stored pixels) and `orientation` known from elsewhere."""
    return _from_sources(_Sources(ifd0, exif, gps, None), size, orientation)


def _from_sources(src: _Sources, size: tuple[int, int], orientation: int | None) -> ImageMetadata:
    position = _safe(_gps_position, src.gps)
    return ImageMetadata(
        width=size[0],
        height=size[1],
        orientation=orientation,
        shot_at=_shot_at(src),
        shot_at_offset_minutes=_shot_at_offset(src),
        latitude=position[0] if position else None,
        longitude=position[1] if position else None,
        camera_make=_safe(_tag_text, src, Base.Make),
        camera_model=_safe(_tag_text, src, Base.Model),
        camera_serial=_safe(_tag_text, src, Base.BodySerialNumber)
        or _safe(_tag_text, src, _DNG_CAMERA_SERIAL),
        lens_model=_safe(_tag_text, src, Base.LensModel),
        focal_length=_safe(_focal_length, src),
        f_number=_safe(_f_number, src),
        exposure_time=_safe(_exposure_time, src),
        iso=_safe(_iso, src),
        caption=_safe(_xmp_caption, src.xmp) or _safe(_exif_caption, src),
        tags=_safe(_xmp_tags, src.xmp) or _safe(_xp_keywords, src),
        rating=_first_not_none(_safe(_xmp_rating, src.xmp), _safe(_exif_rating, src)),
        exposure_bias=_safe(_exposure_bias, src),
        exposure_mode=_safe(_exposure_mode, src),
        focus_distance=_safe(_focus_distance, src),
    )


def _safe(read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    try:
        return read(*args, **kwargs)
    except _FIELD_ERRORS:
        return None


def _first_not_none(*values: T | None) -> T | None:
    return next((value for value in values if value is not None), None)


def _read_sources(img: Image.Image) -> _Sources:
    xmp = _parse_xmp(img)
    # Pillow's IFD parser fails in many ways on a corrupt blob (SyntaxError, struct.error,
    # OSError, an assertion for a closed TIFF, its warnings when they are made errors), and a
    # picture's metadata is never worth failing its upload.
    try:
        exif = img.getexif()
    except Exception:
        return _Sources({}, {}, {}, xmp)
    # Nikon, Canon and Fujifilm bodies keep their serial in the maker note (processing/maker_notes).
    exif_ifd = with_body_serial(
        _sub_ifd(exif, IFD.Exif), lambda: exif_blob_serial(img.info.get("exif"))
    )
    return _Sources(exif, exif_ifd, _sub_ifd(exif, IFD.GPSInfo), xmp)


def _sub_ifd(exif: Image.Exif, tag: int) -> Mapping[int, Any]:
    try:
        return exif.get_ifd(tag)
    except Exception:  # as in _read_sources; a broken sub-IFD must not lose IFD0
        return {}


def _stored_size(img: Image.Image, orientation: int | None) -> tuple[int, int]:
    # Pillow reports an unloaded TIFF's size already turned by its orientation (loading it then
    # turns the pixels and drops the tag); turn it back so width and height are the stored ones.
    width, height = img.size
    if isinstance(img, TiffImagePlugin.TiffImageFile) and orientation in (5, 6, 7, 8):
        return height, width
    return width, height


def _text(value: object) -> str | None:
    """A clean string from a tag value: bytes decoded as UTF-8, NULs and blanks stripped."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    elif isinstance(value, str):
        value = _undo_latin1(value)
    else:
        return None
    return _clean(value)


def _clean(value: str) -> str | None:
    return value.replace("\x00", "").strip() or None


def _undo_latin1(value: str) -> str:
    # Pillow decodes ASCII tags as Latin-1, but phones and cameras write UTF-8 there; bytes that
    # form valid UTF-8 are almost never meant as Latin-1.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _tag_text(src: _Sources, tag: int) -> str | None:
    return _text(src.get(tag))


def _number(value: object) -> float:
    """A finite float from a rational or number (the first one of a sequence)."""
    if isinstance(value, (tuple, list)):
        value = value[0]
    if not isinstance(value, Real):
        raise TypeError(f"not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):  # Pillow reads a zero-denominator rational as NaN
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _decimal(value: float) -> str:
    """One decimal at most, none when whole: 50 -> "50", 4.25 -> "4.2", 1.3 -> "1.3"."""
    return f"{value:.1f}".removesuffix(".0")


def _orientation(src: _Sources) -> int | None:
    value = src.get(Base.Orientation)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _focal_length(src: _Sources) -> str | None:
    focal = _number(src.get(Base.FocalLength))
    return f"{_decimal(focal)}mm" if focal >= 0.05 else None


def _f_number(src: _Sources) -> float | None:
    f_number = _number(src.get(Base.FNumber))
    return round(f_number, 2) if f_number > 0 else None


def _exposure_time(src: _Sources) -> str | None:
    seconds = _number(src.get(Base.ExposureTime))
    if seconds <= 0:
        return None
    if seconds < 0.5:
        return f"1/{round(1 / seconds)}"
    return f"{_decimal(seconds)}s"


def _exposure_bias(src: _Sources) -> float | None:
    bias = _number(src.get(Base.ExposureBiasValue))
    # Cameras offer at most ±5 EV (a few ±10 over bracketed series); more is a broken tag.
    return round(bias, 2) if abs(bias) <= 15 else None


def _exposure_mode(src: _Sources) -> int | None:
    value = src.get(Base.ExposureMode)
    return value if isinstance(value, int) and 0 <= value <= 2 else None


def _focus_distance(src: _Sources) -> float | None:
    distance = _number(src.get(Base.SubjectDistance))
    # 0 is "unknown" and 0xFFFFFFFF "infinity" (EXIF 2.3); neither is a distance to step.
    return round(distance, 3) if 0 < distance < MAX_FOCUS_DISTANCE else None


def _iso(src: _Sources) -> int | None:
    value = src.get(Base.ISOSpeedRatings)
    if isinstance(value, (tuple, list)):  # the tag may hold several values; the first is ISO
        value = value[0]
    return value if isinstance(value, int) and value > 0 else None


def _shot_at(src: _Sources) -> datetime | None:
    for date_tag, subsec_tag, offset_tag in _TIMESTAMP_TAGS:
        shot = _safe(_timestamp, src, date_tag, subsec_tag, offset_tag)
        if shot is not None:
            return shot
    return None


def _shot_at_offset(src: _Sources) -> int | None:
    """Minutes east of UTC recorded beside the date `_shot_at` chose; None if none was."""
    for date_tag, _subsec_tag, offset_tag in _TIMESTAMP_TAGS:
        if _safe(_timestamp, src, date_tag, _subsec_tag, offset_tag) is not None:
            offset = _safe(_utc_offset, src, offset_tag)
            return None if offset is None else int(offset.utcoffset(None).total_seconds() // 60)
    return None


def _timestamp(src: _Sources, date_tag: int, subsec_tag: int, offset_tag: int) -> datetime | None:
    match = _DATE.match(_tag_text(src, date_tag) or "")
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    # A bad sub-second or offset tag must not lose the date itself.
    microsecond = _safe(_subseconds, src, subsec_tag) or 0
    tzinfo = _safe(_utc_offset, src, offset_tag) or UTC
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=tzinfo)


def _subseconds(src: _Sources, tag: int) -> int | None:
    digits = re.match(r"\d+", _tag_text(src, tag) or "")
    return int(digits[0][:6].ljust(6, "0")) if digits else None


def _utc_offset(src: _Sources, tag: int) -> timezone | None:
    match = _OFFSET.match(_tag_text(src, tag) or "")
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(-offset if sign == "-" else offset)


def _gps_position(gps: Mapping[int, Any]) -> tuple[float, float] | None:
    if GPS.GPSLatitude not in gps or GPS.GPSLongitude not in gps:
        return None
    latitude = _coordinate(gps[GPS.GPSLatitude], gps.get(GPS.GPSLatitudeRef), "S", 90)
    longitude = _coordinate(gps[GPS.GPSLongitude], gps.get(GPS.GPSLongitudeRef), "W", 180)
    return latitude, longitude


def _coordinate(value: object, ref: object, negative_ref: str, limit: float) -> float:
    """Decimal degrees from (degrees, minutes, seconds) rationals and their N/S or E/W ref."""
    parts = [_number(part) for part in (value if isinstance(value, tuple) else (value,))]
    if not 1 <= len(parts) <= 3 or any(part < 0 for part in parts):
        raise ValueError(f"not a GPS coordinate: {value!r}")
    degrees = sum(part / unit for part, unit in zip(parts, (1, 60, 3600), strict=False))
    if degrees > limit:
        raise ValueError(f"GPS coordinate out of range: {degrees}")
    negative = (_text(ref) or "").upper().startswith(negative_ref)
    return round(-degrees if negative else degrees, 7)


def _exif_caption(src: _Sources) -> str | None:
    caption = _tag_text(src, Base.ImageDescription)
    return None if caption is None or caption.upper() in _CAMERA_CAPTIONS else caption


def _xp_keywords(src: _Sources) -> list[str] | None:
    # Windows writes XPKeywords as UTF-16LE, NUL-terminated, keywords separated by ";".
    raw = src.get(Base.XPKeywords)
    if not isinstance(raw, bytes):
        return None
    return _keywords(raw.decode("utf-16-le", errors="replace").split(";"))


def _exif_rating(src: _Sources) -> int | None:
    return _rating(src.get(Base.Rating))


def _rating(value: object) -> int | None:
    """-1 (rejected) to 5 stars; XMP may write it as a real, e.g. "3.0"."""
    number = float(value) if isinstance(value, (str, int, float)) else math.nan
    return int(number) if number.is_integer() and -1 <= number <= 5 else None


def _keywords(words: list[str]) -> list[str] | None:
    cleaned = (_clean(word) for word in words)
    return list(dict.fromkeys(word for word in cleaned if word)) or None


def _parse_xmp(img: Image.Image) -> ElementTree.Element | None:
    packet = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if isinstance(packet, str):
        packet = packet.encode("utf-8")
    if not isinstance(packet, bytes):
        return None
    packet = packet.strip(b"\x00 \t\r\n")
    # XMP never declares a DTD; refusing one keeps entity-expansion tricks away from the parser.
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return None
    try:
        return ElementTree.fromstring(packet)
    except (ElementTree.ParseError, ValueError):
        return None


def _xmp_items(root: ElementTree.Element | None, prop: str) -> list[ElementTree.Element]:
    """The rdf:li items of the first non-empty `prop` (an rdf:Bag, rdf:Seq or rdf:Alt)."""
    if root is None:
        return []
    for element in root.iter(prop):
        items = list(element.iter(f"{_RDF}li"))
        if items:
            return items
    return []


def _xmp_tags(root: ElementTree.Element | None) -> list[str] | None:
    return _keywords([item.text or "" for item in _xmp_items(root, f"{_DC}subject")])


def _xmp_caption(root: ElementTree.Element | None) -> str | None:
    items = _xmp_items(root, f"{_DC}description")
    default = [item for item in items if item.get(_XML_LANG) == "x-default"]
    texts = (_clean(item.text or "") for item in default + items)
    return next((text for text in texts if text), None)


def _xmp_rating(root: ElementTree.Element | None) -> int | None:
    if root is None:
        return None
    for description in root.iter(f"{_RDF}Description"):  # written as an attribute...
        if (value := description.get(f"{_XMP}Rating")) is not None:
            return _rating(value)
    element = root.find(f".//{_XMP}Rating")  # ...or as an element
    return _rating(element.text) if element is not None else None
