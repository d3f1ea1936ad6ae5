"""Capture time as photographers mean it: the camera's wall clock, and its UTC offset if known.

`images.shot_at` stores the instant in UTC (so it orders and measures gaps across cameras);
`images.shot_at_offset_minutes` keeps the offset the camera recorded (EXIF OffsetTimeOriginal
and friends), NULL when it recorded none. Without an offset the wall-clock time was stored as if
it were UTC: the wall clock is still exact, the instant is not known.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from pydantic import TypeAdapter

_DATETIME = TypeAdapter(datetime)


def captured_at(shot_at: datetime | None, offset_minutes: int | None) -> datetime | None:
    """The instant in the camera's own offset (UTC when it recorded none)."""
    if shot_at is None:
        return None
    if offset_minutes is None:
        return shot_at.astimezone(UTC)
    return shot_at.astimezone(timezone(timedelta(minutes=offset_minutes)))


def wall_clock(shot_at: datetime | None, offset_minutes: int | None) -> str | None:
    """What the camera's clock said, ISO 8601 without an offset: `2024-05-01T10:20:30`."""
    local = captured_at(shot_at, offset_minutes)
    return None if local is None else local.replace(tzinfo=None).isoformat()


def offset_text(offset_minutes: int | None) -> str | None:
    """`+02:00`, `-03:30`, `+00:00`; None when the camera recorded no offset."""
    if offset_minutes is None:
        return None
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def iso_text(value: datetime | None) -> str | None:
    """A datetime exactly as the API's JSON writes it (`Z` for UTC), for the exports."""
    return None if value is None else str(_DATETIME.dump_python(value, mode="json"))
