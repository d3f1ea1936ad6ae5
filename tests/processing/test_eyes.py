"""Eyes open or closed on real frames of a real blink (tests/data/eyes/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from processing.eyes import MAX_FACES, eyes_states
from processing.quality import assess_quality, closed_share, detect_faces, quality_grey
from tests.factories import real_photo

EYES = Path(__file__).parent.parent / "data" / "eyes"


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("carphone-040.png", "open"),
        ("carphone-042.png", "closed"),
        ("carphone-090.png", "open"),
        ("carphone-092.png", "closed"),
    ],
)
def test_eyes_of_a_real_blink(name: str, state: str) -> None:
    scores = assess_quality(Image.open(EYES / name).convert("RGB"))
    assert scores.face_count == 1
    assert scores.eyes == state


def test_open_eyes_on_a_real_portrait() -> None:
    assert assess_quality(real_photo("astronaut.png")).eyes == "open"


def test_a_box_without_a_face_is_unknown() -> None:
    coffee = real_photo("coffee.png")
    assert eyes_states(coffee, [(200, 100, 120, 120)], 1.0) == ["unknown"]


def test_only_the_largest_faces_are_read() -> None:
    astronaut = real_photo("astronaut.png")
    face = detect_faces(quality_grey(astronaut))[0]
    x, y, w, h = face
    smaller = (x + 4, y + 4, w - 8, h - 8)
    states = eyes_states(astronaut.convert("L"), [smaller] + [face] * MAX_FACES, 1.0)
    assert states == ["unknown"] + ["open"] * MAX_FACES


def test_a_photo_without_faces_has_no_eyes() -> None:
    coffee = real_photo("coffee.png")
    assert detect_faces(quality_grey(coffee)) == []
    assert assess_quality(coffee).eyes is None


def test_closed_share_counts_only_the_faces_read() -> None:
    assert closed_share(None) == 0.0
    assert closed_share("unknown") == 0.0
    assert closed_share("open,closed,unknown") == 0.5
    assert closed_share(["closed"]) == 1.0
