"""Panorama sweeps told from looks (processing/panorama.py) and EXIF (processing/sets.py), and
focus stacks told from EXIF focus distance, on frames cut from real photos."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image

from processing.grouping import UNGROUPED
from processing.panorama import look_array, look_of, step_between, sweeps_in
from processing.sets import (
    BURST,
    FOCUS_STACK,
    PANORAMA,
    Frame,
    find_sweeps,
    group_kinds,
    with_brackets,
)
from tests.factories import real_photo, shaken, sweep, with_noise

START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def look(img: Image.Image) -> np.ndarray:
    array = look_array(look_of(img))
    assert array is not None
    return array


def frames(count: int, seconds: float = 1.5, first_id: int = 1) -> list[Frame]:
    return [
        Frame(
            first_id + k,
            START + timedelta(seconds=k * seconds),
            "fujifilm|x-t4|",
            0.0,
            0,
            focal_length="24mm",
            exposure_time="1/250",
            f_number=8.0,
            iso=200,
        )
        for k in range(count)
    ]


def test_the_shift_between_neighbours_of_a_sweep_is_measured() -> None:
    first, second = sweep(real_photo("astronaut.png"), 2, 0.4, seed=1)
    step = step_between(look(first), look(second))
    assert abs(step.dx - 0.4) < 0.05
    assert abs(step.dy) < 0.05
    assert step.direction() == (1, 0)


def test_a_vertical_sweep_and_a_burst_of_one_scene() -> None:
    photo = real_photo("coffee.png")
    assert sweeps_in([look(f) for f in sweep(photo, 4, 0.3, across=True, seed=2)]) == [range(4)]
    burst = [with_noise(photo, 3, 1), with_noise(shaken(photo), 3, 2), with_noise(photo, 3, 3)]
    assert sweeps_in([look(f) for f in burst]) == []


def test_a_sweep_needs_one_direction_and_three_frames() -> None:
    there = [look(f) for f in sweep(real_photo("chelsea.png"), 3, 0.35, seed=4)]
    assert sweeps_in(there[:2]) == []
    assert sweeps_in([there[0], there[1], there[0]]) == []


def test_a_sweep_split_by_its_looks_becomes_one_panorama_group() -> None:
    shots = frames(4)
    looks = {
        f.id: look_of(img)
        for f, img in zip(shots, sweep(real_photo("coffee.png"), 4, 0.35), strict=True)
    }
    labels = {1: "Group 1", 2: "Group 1", 3: UNGROUPED, 4: "Group 2", 5: "Group 2"}
    burst = replace(shots[0], id=5, shot_at=START + timedelta(minutes=5))
    result, kinds = with_brackets(labels, [*shots, burst], looks)
    assert len({result[i] for i in range(1, 5)}) == 1
    assert kinds[result[1]] == PANORAMA
    assert result[5] == UNGROUPED  # its group kept one frame
    assert group_kinds({f.id: "Pano" for f in shots}, shots, looks) == {"Pano": PANORAMA}
    assert group_kinds({f.id: "Pano" for f in shots}, shots, None) != {"Pano": PANORAMA}


def test_no_sweep_where_the_focal_length_or_the_exposure_changes_or_the_gap_is_long() -> None:
    imgs = sweep(real_photo("coffee.png"), 4, 0.35)
    shots = frames(4)
    looks = {f.id: look_of(img) for f, img in zip(shots, imgs, strict=True)}
    assert find_sweeps(shots, looks) == [[1, 2, 3, 4]]
    zoomed = [replace(f, focal_length=f"{24 + 10 * k}mm") for k, f in enumerate(shots)]
    assert find_sweeps(zoomed, looks) == []
    slower = [replace(f, exposure_time="1/30") if f.id == 2 else f for f in shots]
    assert find_sweeps(slower, looks) == []
    assert find_sweeps(frames(4, seconds=30), looks) == []
    assert find_sweeps([replace(f, camera=None) for f in shots], looks) == []


def test_a_focus_distance_stepping_one_way_is_a_focus_stack() -> None:
    shots = [replace(f, focus_distance=d) for f, d in zip(frames(3), (0.5, 0.8, 1.2), strict=True)]
    labels = {f.id: "Group 1" for f in shots}
    assert group_kinds(labels, shots) == {"Group 1": FOCUS_STACK}
    back_and_forth = [
        replace(f, focus_distance=d) for f, d in zip(frames(3), (0.5, 1.2, 0.8), strict=True)
    ]
    assert group_kinds(labels, back_and_forth) == {"Group 1": BURST}
    one_unknown = [replace(f, focus_distance=None) if f.id == 3 else f for f in shots]
    assert group_kinds(labels, one_unknown) == {"Group 1": BURST}
