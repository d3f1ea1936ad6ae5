"""Frames of one group judged side by side, tile by tile (processing/group_focus.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from processing.group_focus import (
    GroupJudged,
    is_focus_stack,
    judged_in_group,
    member,
    relative_focus,
)
from processing.quality import assess_quality
from tests.factories import focus_stack, real_photo, shaken, shallow_focus, with_noise


def judged(index: int, img: Image.Image) -> tuple[GroupJudged, np.ndarray | None]:
    scores = assess_quality(img)
    assert scores.focus_tiles is not None
    return member(index, scores, scores.focus_tiles)


def tiles_of(pair: tuple[GroupJudged, np.ndarray | None]) -> np.ndarray:
    assert pair[1] is not None
    return pair[1]


def number(value: float | None) -> float:
    assert value is not None
    return value


def centred(img: Image.Image, inside: bool) -> Image.Image:
    width, height = img.size
    region = (width // 4, height // 4, width * 3 // 4, height * 3 // 4)
    return shallow_focus(img, region, inside=inside)


@pytest.mark.parametrize("name", ["coffee.png", "rocket.jpg"])
def test_the_frame_that_focused_the_subject_wins_side_by_side(name: str) -> None:
    photo = real_photo(name)
    kept, missed = judged(0, centred(photo, inside=True)), judged(1, centred(photo, inside=False))
    # Alone, the busy sharp surround outscores the focused subject.
    assert number(missed[0].quality_score) > number(kept[0].quality_score)
    side = judged_in_group([kept, missed])
    assert number(side[0].quality_score) > number(side[1].quality_score)
    assert number(side[0].sharpness) > number(side[1].sharpness)
    assert [j.id for j in side] == [0, 1]
    assert side[0].exposure == kept[0].exposure  # only focus is judged side by side


def test_a_frame_soft_everywhere_shares_less_focus() -> None:
    photo = real_photo("astronaut.png")
    tiles = [
        tiles_of(judged(i, img))
        for i, img in enumerate([photo, photo.filter(ImageFilter.GaussianBlur(2))])
    ]
    shares = relative_focus(tiles)
    assert shares is not None
    assert shares[0] == pytest.approx(1.0)
    assert shares[1] < 0.5


def test_tiles_sharp_in_every_frame_cancel_out() -> None:
    """The frames differ only in one corner: the centre, sharp in both, decides nothing."""
    base = np.full((5, 7), 400.0)
    soft_corner = base.copy()
    soft_corner[0, 0] = 40.0
    shares = relative_focus([base, soft_corner])
    assert shares == pytest.approx([1.0, 0.1])


def test_maps_that_do_not_line_up_leave_the_frames_as_judged_alone() -> None:
    photo = real_photo("coffee.png")
    landscape = judged(0, photo)
    portrait = judged(1, photo.transpose(Image.Transpose.ROTATE_90))
    assert relative_focus([tiles_of(landscape), tiles_of(portrait)]) is None
    assert judged_in_group([landscape, portrait]) == [landscape[0], portrait[0]]
    # Identical frames: nothing differs, nothing to judge side by side.
    assert relative_focus([tiles_of(landscape), tiles_of(landscape)]) is None
    assert judged_in_group([landscape, (portrait[0], None)]) == [landscape[0], portrait[0]]


@pytest.mark.parametrize(("name", "across"), [("coffee.png", False), ("chelsea.png", True)])
def test_a_moving_sharp_region_is_a_focus_stack(name: str, across: bool) -> None:
    photo = real_photo(name)
    maps = [tiles_of(judged(i, f)) for i, f in enumerate(focus_stack(photo, 5, across))]
    assert is_focus_stack(maps)
    assert not is_focus_stack(maps[:2])  # two frames: a missed focus, not a stack


def test_bursts_with_a_shaken_or_missed_frame_are_not_focus_stacks() -> None:
    photo = real_photo("astronaut.png")
    soft = photo.filter(ImageFilter.GaussianBlur(4))
    steady = [photo, shaken(photo), photo.filter(ImageFilter.GaussianBlur(2))]
    centre = (128, 128, 384, 384)
    refocused = [shallow_focus(photo, centre, inside=True), shallow_focus(photo, centre, False)]
    for frames in (steady, [*refocused, photo], [*refocused, soft]):
        assert not is_focus_stack([tiles_of(judged(i, f)) for i, f in enumerate(frames)])


@pytest.mark.parametrize("third", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_a_subject_at_a_third_point_wins_side_by_side(third: tuple[int, int]) -> None:
    """Where a photographer puts a subject: around a third point, not the centre. Alone, and
    with a centre prior only, the sharp background around it won all four."""
    photo = real_photo("chelsea.png")
    width, height = photo.size
    x, y = width * third[0] / 3, height * third[1] / 3
    rx, ry = width * 0.18, height * 0.18
    box = (round(x - rx), round(y - ry), round(x + rx), round(y + ry))
    kept = judged(0, shallow_focus(photo, box, inside=True))
    missed = judged(1, shallow_focus(photo, box, inside=False))
    assert number(missed[0].quality_score) > number(kept[0].quality_score)
    side = judged_in_group([kept, missed])
    assert number(side[0].quality_score) > number(side[1].quality_score)


@pytest.mark.parametrize("seed", range(3))
def test_a_missed_focus_at_high_iso_loses_side_by_side_on_a_mostly_flat_frame(seed: int) -> None:
    """A fundus photograph: fine vessels in a disc, black around it. The soft high-ISO frame's
    grain, a little above what its noise estimate takes off, passed for detail: alone it
    outscored the in-focus frame's vessels. Grain within the estimate's error counts as none."""
    photo = real_photo("retina.jpg")
    photo = photo.resize((512, 512 * photo.height // photo.width), Image.Resampling.LANCZOS)
    kept = judged(0, with_noise(photo, 3, seed))
    missed = judged(1, with_noise(photo.filter(ImageFilter.GaussianBlur(2)), 10, seed + 10))
    assert number(kept[0].quality_score) > number(missed[0].quality_score)
    side = judged_in_group([kept, missed])
    assert number(side[0].quality_score) > number(side[1].quality_score)
