"""Sets a photographer keeps whole: exposure brackets, focus stacks and panorama sweeps.

A bracket is a run of consecutive frames of one camera body, each at most
BRACKET_GAP_SECONDS after the one before, whose exposure compensation (EXIF ExposureBiasValue)
steps evenly across at least MIN_BRACKET_FRAMES distinct values (-2, -1, 0, +1, +2 or
0, -1, +1 in the camera's order), or frames the camera marked as auto-bracketed (EXIF
ExposureMode 2) whose compensations do not repeat. An HDR merge needs every frame, so all of
them are keepers (the group's kind is `bracket`).

A focus stack is a group of one framing (its frames' tile sharpness maps line up) shot by one
camera at one exposure compensation, in which the sharp region moves from frame to frame
(processing.group_focus.is_focus_stack), or whose EXIF focus distance (SubjectDistance, where
the camera writes it) steps one way across at least MIN_STACK_FRAMES frames; its frames are
merged into one picture, so all of them are keepers too (kind `focus_stack`). Measured with
python -m bench.focus_stacks (bench/results/focus_stacks.txt).

A panorama sweep is a run of at least MIN_SWEEP_FRAMES consecutive frames of one known body,
each at most SWEEP_GAP_SECONDS after the one before, at one focal length and one exposure
(shutter, aperture, ISO, compensation, where EXIF has them), whose neighbours overlap shifted
a large share of the frame, all the same way (processing.panorama.sweeps_in on their looks);
stitched into one picture, all of them are keepers (kind `panorama`). Measured with
python -m bench.panoramas (bench/results/panoramas.txt).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from processing.group_focus import MIN_STACK_FRAMES, is_focus_stack
from processing.grouping import UNGROUPED
from processing.panorama import MIN_SWEEP_FRAMES, look_array, sweeps_in

BURST = "burst"
BRACKET = "bracket"
FOCUS_STACK = "focus_stack"
PANORAMA = "panorama"
GROUP_KINDS = (BURST, BRACKET, FOCUS_STACK, PANORAMA)
# Sets kept whole: every frame a keeper.
KEPT_WHOLE = (BRACKET, FOCUS_STACK, PANORAMA)
# The camera's ExposureMode for auto bracketing (EXIF 2.3, tag 0xA402).
AUTO_BRACKET_MODE = 2
# A bracket is shot in one go: a camera takes 3 to 9 frames in a second or two, a tripod HDR
# with long exposures a few seconds apart. Further apart, the frames are separate shots.
BRACKET_GAP_SECONDS = 5.0
MIN_BRACKET_FRAMES = 3
# Brackets step by 1/3 EV or more; steps of one bracket are equal up to the camera's rounding.
MIN_STEP_EV = 0.3
STEP_TOLERANCE_EV = 0.2
# A sweep is shot frame after frame, a second or two apart by hand, a few seconds on a tripod
# with long exposures; further apart, the frames are separate shots.
SWEEP_GAP_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Frame:
    """What bracket detection reads of an image; None where EXIF does not say."""

    id: int
    shot_at: datetime | None
    camera: str | None
    exposure_bias: float | None
    exposure_mode: int | None
    # The judge's tile sharpness map (QualityScores.focus_tiles); None before it is judged.
    focus_tiles: list[list[float]] | None = None
    focal_length: str | None = None
    exposure_time: str | None = None
    f_number: float | None = None
    iso: int | None = None
    # Metres focused at (EXIF SubjectDistance).
    focus_distance: float | None = None

    def exposure(self) -> tuple[object, ...]:
        """What one sweep keeps the same: focal length and exposure settings."""
        return (self.focal_length, self.exposure_time, self.f_number, self.iso, self.exposure_bias)


def find_brackets(
    frames: Sequence[Frame], gap_seconds: float = BRACKET_GAP_SECONDS
) -> list[list[int]]:
    """The brackets among `frames`: lists of image ids in capture order."""
    brackets: list[list[int]] = []
    for run in _consecutive_runs(frames, gap_seconds):
        brackets.extend(_brackets_in(run))
    return brackets


def _consecutive_runs(frames: Sequence[Frame], gap_seconds: float) -> list[list[Frame]]:
    """Each camera's timed frames in capture order, cut wherever two are too far apart."""
    by_camera: dict[str | None, list[Frame]] = {}
    for frame in frames:
        if frame.shot_at is not None:
            by_camera.setdefault(frame.camera, []).append(frame)
    runs: list[list[Frame]] = []
    for timed in by_camera.values():
        timed.sort(key=lambda f: (f.shot_at, f.id))
        run: list[Frame] = []
        for frame in timed:
            if run and _seconds_between(run[-1], frame) > gap_seconds:
                runs.append(run)
                run = []
            run.append(frame)
        runs.append(run)
    return runs


def _seconds_between(first: Frame, second: Frame) -> float:
    assert first.shot_at is not None
    assert second.shot_at is not None
    return (second.shot_at - first.shot_at).total_seconds()


def _brackets_in(run: list[Frame]) -> list[list[int]]:
    """Cut the run where a compensation repeats (a new bracket, or no bracket at all); keep
    the pieces that step like a bracket."""
    found: list[list[int]] = []
    piece: list[Frame] = []
    for frame in [*run, None]:
        ends = (
            frame is None
            or frame.exposure_bias is None
            or any(_same_ev(f.exposure_bias, frame.exposure_bias) for f in piece)
        )
        if ends:
            if _is_bracket(piece):
                found.append([f.id for f in piece])
            piece = []
        if frame is not None and frame.exposure_bias is not None:
            piece.append(frame)
    return found


def _is_bracket(piece: Sequence[Frame]) -> bool:
    biases = sorted(f.exposure_bias for f in piece if f.exposure_bias is not None)
    if len(biases) != len(piece) or len(piece) < 2:
        return False
    if all(f.exposure_mode == AUTO_BRACKET_MODE for f in piece):
        return True  # the camera says so; compensations already known to be distinct
    if len(piece) < MIN_BRACKET_FRAMES:
        return False
    steps = [b - a for a, b in zip(biases, biases[1:], strict=False)]
    return min(steps) >= MIN_STEP_EV and max(steps) - min(steps) <= STEP_TOLERANCE_EV


def _same_ev(a: float | None, b: float) -> bool:
    return a is not None and abs(a - b) < 0.05


def sweep_candidates(frames: Sequence[Frame]) -> list[list[Frame]]:
    """Runs of consecutive frames that may be sweeps by their EXIF alone: one known body, a
    short gap, one focal length and exposure; their looks decide (find_sweeps)."""
    candidates: list[list[Frame]] = []
    known = [f for f in frames if f.camera is not None]
    for run in _consecutive_runs(known, SWEEP_GAP_SECONDS):
        piece: list[Frame] = []
        for frame in [*run, None]:
            if frame is None or (piece and not _same_settings(piece[-1], frame)):
                if len(piece) >= MIN_SWEEP_FRAMES:
                    candidates.append(piece)
                piece = []
            if frame is not None:
                piece.append(frame)
    return candidates


def _same_settings(first: Frame, second: Frame) -> bool:
    return all(
        a is None or b is None or a == b
        for a, b in zip(first.exposure(), second.exposure(), strict=True)
    )


def find_sweeps(frames: Sequence[Frame], looks: Mapping[int, bytes]) -> list[list[int]]:
    """The panorama sweeps among `frames`, told by their `looks` (look_of, by image id):
    lists of image ids in capture order."""
    sweeps: list[list[int]] = []
    for run in sweep_candidates(frames):
        arrays = [look_array(looks[f.id]) if f.id in looks else None for f in run]
        sweeps.extend([run[i].id for i in found] for found in sweeps_in(arrays))
    return sweeps


_GROUP_NUMBER = re.compile(r"^Group (\d+)$")


def with_brackets(
    labels: Mapping[int, str], frames: Sequence[Frame], looks: Mapping[int, bytes] | None = None
) -> tuple[dict[int, str], dict[str, str]]:
    """The labels with each bracket and each panorama sweep (told by `looks`, by image id)
    made a group of its own, and each group's kind.

    A set that is already a group keeps its label; otherwise its frames leave their groups
    (they may have been split by their looks, or joined to a burst) for a new "Group n" after
    the last one. A group left with one frame becomes Ungrouped."""
    result = dict(labels)
    kinds = {label: BURST for label in result.values() if label != UNGROUPED}
    numbers = [int(m.group(1)) for m in map(_GROUP_NUMBER.match, kinds) if m]
    next_number = max(numbers, default=0) + 1
    shrunk: set[str] = set()
    members = [f for f in frames if f.id in result]
    brackets = find_brackets(members)
    in_bracket = {i for bracket in brackets for i in bracket}
    sweeps = find_sweeps([f for f in members if f.id not in in_bracket], looks or {})
    for kind, found in [*((BRACKET, b) for b in brackets), *((PANORAMA, s) for s in sweeps)]:
        before = {result[i] for i in found}
        label = before.pop() if len(before) == 1 else UNGROUPED
        if label == UNGROUPED or _size(result, label) != len(found):
            shrunk.update({result[i] for i in found})
            label = f"Group {next_number}"
            next_number += 1
        for image_id in found:
            result[image_id] = label
        kinds[label] = kind
    for label, kind in _stack_kinds(result, frames).items():
        if kinds.get(label) == BURST:
            kinds[label] = kind
    sizes: dict[str, int] = {}
    for label in result.values():
        sizes[label] = sizes.get(label, 0) + 1
    for image_id, label in result.items():
        if label in shrunk and label != UNGROUPED and sizes[label] == 1:
            result[image_id] = UNGROUPED
    return result, {label: kinds[label] for label in set(result.values()) if label in kinds}


def group_kinds(
    labels: Mapping[int, str], frames: Sequence[Frame], looks: Mapping[int, bytes] | None = None
) -> dict[str, str]:
    """Each group's kind, its members as they are: `bracket` when they are one bracket,
    `panorama` when they are one sweep (told by `looks`, by image id)."""
    members: dict[str, set[int]] = {}
    for image_id, label in labels.items():
        if label != UNGROUPED:
            members.setdefault(label, set()).add(image_id)
    by_id = {f.id: f for f in frames}
    kinds: dict[str, str] = {}
    for label, ids in members.items():
        group = [by_id[i] for i in ids if i in by_id]
        brackets = find_brackets(group)
        sweeps = find_sweeps(group, looks or {})
        if len(brackets) == 1 and set(brackets[0]) == ids:
            kinds[label] = BRACKET
        elif len(sweeps) == 1 and set(sweeps[0]) == ids:
            kinds[label] = PANORAMA
        else:
            kinds[label] = BURST
    for label, kind in _stack_kinds(labels, frames).items():
        if kinds.get(label) == BURST:
            kinds[label] = kind
    return kinds


def _stack_kinds(labels: Mapping[int, str], frames: Sequence[Frame]) -> dict[str, str]:
    """`focus_stack` for each group that is one: all its frames judged, of one known camera
    (EXIF make and model) and one exposure compensation, the sharp region moving from frame to
    frame."""
    members: dict[str, list[Frame]] = {}
    for frame in frames:
        label = labels.get(frame.id)
        if label is not None and label != UNGROUPED:
            members.setdefault(label, []).append(frame)
    kinds: dict[str, str] = {}
    for label, group in members.items():
        maps = [f.focus_tiles for f in group]
        cameras = {f.camera for f in group}
        # Without a known body the looks alone cannot tell a stack from a burst shot hand-held
        # (its frames shift, and each is sharpest somewhere): it stays a burst, as before.
        if len(cameras) != 1 or None in cameras or len({f.exposure_bias for f in group}) != 1:
            continue
        if _focus_steps(group) or (
            all(m is not None for m in maps)
            and is_focus_stack([np.asarray(m, dtype=np.float64) for m in maps if m is not None])
        ):
            kinds[label] = FOCUS_STACK
    return kinds


def _focus_steps(group: Sequence[Frame]) -> bool:
    """Does the EXIF focus distance step one way, frame after frame in capture order, across
    at least MIN_STACK_FRAMES frames of one focal length?"""
    if len(group) < MIN_STACK_FRAMES or len({f.focal_length for f in group}) != 1:
        return False
    timed = sorted(
        (f.shot_at, f.id, f.focus_distance)
        for f in group
        if f.shot_at is not None and f.focus_distance is not None
    )
    if len(timed) != len(group):
        return False
    distances = [distance for _, _, distance in timed]
    steps = np.diff(distances)
    return bool((steps > 0).all() or (steps < 0).all())


def _size(labels: Mapping[int, str], label: str) -> int:
    return sum(1 for value in labels.values() if value == label)
