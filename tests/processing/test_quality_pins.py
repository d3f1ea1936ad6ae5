"""The judge's verdicts on the real photos in tests/data, pinned.

tests/data/judge_pins.json holds `assess_quality` of every real photo in tests/data/moments,
tests/data/eyes and tests/data/real_card (55 frames, 18 faces), decoded as the worker does
(QUALITY_SIDE), made with the judge of QUALITY_VERSION 7 as it was on b96635d. A change that
only makes the judge cheaper must leave them as they are: the scores within 1e-6, the faces'
boxes and sharpnesses as stored (4 and 3 decimals), the eyes' states and the tile map (one
decimal) exactly. A change that means to move them bumps QUALITY_VERSION and the pins with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from processing.photo import load_oriented_rgb
from processing.quality import QUALITY_SIDE, QUALITY_VERSION, assess_quality

DATA = Path(__file__).parents[1] / "data"
PINS: dict[str, dict[str, Any]] = json.loads((DATA / "judge_pins.json").read_text())
PINNED_VERSION = 7
SCORES = ("sharpness", "exposure", "quality_score", "motion_blur", "brightness")
OPTIONAL_SCORES = ("face_sharpness", "eye_sharpness")
EXACT = ("face_count", "eyes", "face_sharpnesses", "faces", "focus_tiles")


def test_the_pins_cover_faces_and_eyes() -> None:
    assert len(PINS) == 55
    assert sum(pin["face_count"] for pin in PINS.values()) == 18
    states = {state for pin in PINS.values() for state in (pin["eyes"] or "").split(",")}
    assert {"open", "closed"} <= states


def test_the_pins_are_of_the_current_version() -> None:
    assert QUALITY_VERSION == PINNED_VERSION, "a new judge: make the pins again"


@pytest.mark.parametrize("name", sorted(PINS))
def test_the_judge_says_what_it_said(name: str) -> None:
    pin = PINS[name]
    got = assess_quality(load_oriented_rgb(DATA / name, QUALITY_SIDE)).columns()
    for key in SCORES:
        assert got[key] == pytest.approx(pin[key], abs=1e-6), key
    for key in OPTIONAL_SCORES:
        if pin[key] is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(pin[key], abs=1e-6), key
    for key in EXACT:
        assert got[key] == pin[key], key
