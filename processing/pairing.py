"""When two files are one photo: a camera's RAW+JPEG pair.

The rule, in one place: the same file stem (`IMG_0001.CR2` and `IMG_0001.JPG`, case ignored),
one RAW and one rendered file (JPEG, HEIC...), the same body (the serial numbers when both
files carry one, else make and model), and capture times at most PAIR_SECONDS apart. A file
whose body or capture time is unknown pairs with nothing: two frames are never merged on a
guess (a wrong merge hides a photo; a missed pair costs a second tile).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePath

from processing.capture_time import captured_at
from processing.sniff import RAW_FORMATS

PAIR_SECONDS = 2.0
# The widest gap two records of one instant can show when only one of them has its UTC offset
# (the other is then read as UTC): the candidates' window in SQL, refined by `is_pair`.
CANDIDATE_WINDOW = timedelta(hours=14, seconds=PAIR_SECONDS)
RAW_MIME_TYPES = frozenset(mime for _extension, mime in RAW_FORMATS.values())


@dataclass(frozen=True, slots=True)
class PairKey:
    """What the rule reads of one file."""

    filename: str
    mime_type: str
    shot_at: datetime | None
    offset_minutes: int | None
    make: str | None
    model: str | None
    serial: str | None


def is_raw(mime_type: str | None) -> bool:
    return mime_type in RAW_MIME_TYPES


def pair_stem(filename: str) -> str:
    """The part of a file name the two files of a pair share, case folded."""
    return PurePath(filename).stem.casefold()


def _text(value: str | None) -> str:
    return (value or "").strip().casefold()


def same_body(a: PairKey, b: PairKey) -> bool:
    if _text(a.serial) and _text(b.serial):
        return _text(a.serial) == _text(b.serial)
    return all(_text(v) for v in (a.make, a.model)) and (_text(a.make), _text(a.model)) == (
        _text(b.make),
        _text(b.model),
    )


def capture_gap(a: PairKey, b: PairKey) -> float | None:
    """Seconds between the two captures; the cameras' wall clocks are compared when only one
    file recorded its UTC offset (one body's clock wrote both)."""
    if a.shot_at is None or b.shot_at is None:
        return None
    if (a.offset_minutes is None) == (b.offset_minutes is None):
        return abs((a.shot_at - b.shot_at).total_seconds())
    wall_a = captured_at(a.shot_at, a.offset_minutes)
    wall_b = captured_at(b.shot_at, b.offset_minutes)
    assert wall_a is not None
    assert wall_b is not None
    return abs((wall_a.replace(tzinfo=None) - wall_b.replace(tzinfo=None)).total_seconds())


def is_pair(a: PairKey, b: PairKey) -> bool:
    """Whether `a` and `b` are the RAW and the rendered file of one photo."""
    gap = capture_gap(a, b)
    return (
        is_raw(a.mime_type) != is_raw(b.mime_type)
        and pair_stem(a.filename) == pair_stem(b.filename)
        and same_body(a, b)
        and gap is not None
        and gap <= PAIR_SECONDS
    )
