"""Moments of one camera: its frames in shooting order, cut where the shutter paused and where
the looks changed; time and camera body only ever cut, looks alone join.

A burst is frames fired in quick succession; the photographer releasing the shutter ends it.
So each camera's time-ordered frames are cut wherever the interval to the next frame is longer
than the fixed gap (the user's `time_gap_seconds`), and also where it jumps well above the
run's own cadence (frames 0.1 s apart, then a 5 s pause), unless the looks across that pause
hold the run's level: then the camera stalled (a full buffer), not the shooter. Inside what is
left, consecutive frames are linked by their looks against the sequence's own level: a pan to
another subject or another person stepping into a fixed camera's view is a sharp drop of
consecutive similarity, while a moving subject declines gradually. Single linkage over all
pairs chains moments (each pair of a fixed camera's moments looks alike); links between
neighbours in the sequence do not.

Frames without a capture time follow the same rules over the order they were uploaded in
(cameras name their files in shooting order), without the time cuts.

Thresholds: chosen on some of bench/real_shoots.py's cards and reported on the others
(bench/moments_loco.py, bench/results/real_shoots_moments_loco.txt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class MomentRules:
    """When consecutive frames of one camera belong to one moment."""

    # Consecutive frames link when at least this alike (cosine) ...
    link_cosine: float = 0.65
    # ... and not more than this below the sequence's local level: the median of the
    # neighbouring consecutive similarities (up to `level_window` on each side).
    level_drop: float = 0.13
    level_window: int = 2
    # A link no other link stands beside (a run of two frames, or two frames among unrelated
    # ones) has no level to compare with; it needs this much on its own.
    lone_link_cosine: float = 0.65
    # A frame unlike both its neighbours (a hand across the lens) is left out, and the frames
    # on either side of it still link when at least this alike; so do they across a frame
    # unlike only the next one (a van passing in front of the subject: until 2026-12-03 that
    # cut the street's cyclist in two under level_drop 0.10, real_shoots_heldout_2.txt).
    skip_cosine: float = 0.75
    # A pause longer than `cadence_ratio` times the neighbouring intervals' median (up to
    # `level_window` on each side, inside what the fixed gap leaves) and longer than
    # `cadence_floor_seconds` starts a new moment: the shooter released the shutter. The
    # cadence is the run's own (no absolute bar above the floor): frames 0.16 s apart, then a
    # 0.7 s pause is two moments; hand-clicked frames 2-3 s apart keep a 5 s pause.
    cadence_ratio: float = 4.0
    cadence_floor_seconds: float = 0.5
    # ... unless the looks across the pause hold the level of the links around it (no more
    # than `stall_drop` below their median): then the camera stalled (a full buffer, a slow
    # card) while the shooter held the shutter. Measured: a talking man fired at 0.1 s with a
    # 1.2 s stall drops 0.02; every pause on bench/real_shoots.py's cards that ends a moment
    # drops 0.10 or more (the lab's target seen again 6 s later, 0.096; the street's suit,
    # then the taxi 0.68 s later, 0.105). A stall in a scene that changes (cars passing behind
    # a fence, 0.10) still splits: a wrong split costs a click, a wrong merge hides a moment.
    stall_drop: float = 0.05
    # A link taken within this much of being cut marks its group `may_hold_moments`.
    doubt_margin: float = 0.05


DEFAULT_RULES = MomentRules()


@dataclass(frozen=True, slots=True)
class MomentGroups:
    """Moment labels (one per row, -1: alone) and, per label, how sure the grouping is."""

    labels: NDArray[np.intp]
    cohesion: dict[int, float]  # the weakest link holding the group together (cosine)
    split_before: dict[int, int]  # the row starting the part after a candidate cut not taken


def cadence_cuts(
    seconds: NDArray[np.float64], gap_seconds: float, rules: MomentRules = DEFAULT_RULES
) -> NDArray[np.bool_]:
    """For each interval between consecutive frames (`seconds`, in shooting order), whether a
    new moment starts there: past the fixed gap, or a pause well above the cadence around it."""
    intervals = np.diff(seconds)
    cuts = intervals > gap_seconds
    # The cadence is read inside each stretch the fixed gap leaves.
    starts = np.r_[0, np.flatnonzero(cuts) + 1]
    ends = np.r_[np.flatnonzero(cuts), intervals.size]
    w = rules.level_window
    for start, end in zip(starts, ends, strict=True):
        for i in range(start, end):
            if intervals[i] <= rules.cadence_floor_seconds:
                continue
            around = np.r_[intervals[max(start, i - w) : i], intervals[i + 1 : min(end, i + w + 1)]]
            if around.size and intervals[i] > rules.cadence_ratio * float(np.median(around)):
                cuts[i] = True
    return cuts


def stalls(
    unit: NDArray[np.floating], gaps: NDArray[np.bool_], cuts: NDArray[np.bool_], window: int
) -> NDArray[np.float64]:
    """For each interval between consecutive frames (unit rows, in shooting order) that
    `cuts` cuts and `gaps` does not, how far the looks across it fall below the median of the
    uncut links around it (up to `window` on each side, with no gap between; NaN: none, or
    not a cadence cut)."""
    x = unit.astype(np.float64)
    links = np.einsum("ij,ij->i", x[:-1], x[1:])
    drops = np.full(links.size, np.nan)
    for i in np.flatnonzero(cuts & ~gaps):
        around = [
            float(links[j])
            for j in range(max(0, i - window), min(links.size, i + window + 1))
            if j != i and not cuts[j] and not gaps[min(i, j) : max(i, j)].any()
        ]
        if around:
            drops[i] = float(np.median(around)) - float(links[i])
    return drops


def _levels(links: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Each link's local level: the median of up to `window` links on each side (NaN: none)."""
    levels = np.full(links.size, np.nan)
    for i in range(links.size):
        around = np.r_[links[max(0, i - window) : i], links[i + 1 : i + window + 1]]
        if around.size:
            levels[i] = float(np.median(around))
    return levels


def link_run(
    unit: NDArray[np.floating], rules: MomentRules = DEFAULT_RULES
) -> tuple[NDArray[np.intp], list[float], list[int | None]]:
    """Moments inside one run of frames (unit rows, in shooting order): a part id per frame,
    and per part its weakest link and the position a doubtful link was taken at (or None)."""
    m = unit.shape[0]
    if m == 1:
        return np.zeros(1, dtype=np.intp), [1.0], [None]
    x = unit.astype(np.float64)
    links = np.einsum("ij,ij->i", x[:-1], x[1:])
    levels = _levels(links, rules.level_window)
    lone = np.isnan(levels)
    floor = np.where(lone, rules.lone_link_cosine, rules.link_cosine)
    bar = np.where(lone, floor, np.maximum(floor, levels - rules.level_drop))
    taken = links >= bar
    # Union-find over positions; edges are taken links and skips over a frame where a link
    # was cut.
    parent = np.arange(m)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    weakest: dict[int, float] = {}
    doubt: dict[int, tuple[float, int]] = {}

    def join(a: int, b: int, cosine: float, margin: float) -> None:
        ra, rb = root(a), root(b)
        if ra == rb:
            return
        parent[rb] = ra
        weakest[ra] = min(weakest.pop(ra, 1.0), weakest.pop(rb, 1.0), cosine)
        doubts = [d for d in (doubt.pop(ra, None), doubt.pop(rb, None)) if d is not None]
        if margin < rules.doubt_margin:
            doubts.append((margin, b))
        if doubts:
            doubt[ra] = min(doubts)

    for i in np.flatnonzero(taken):
        join(int(i), int(i) + 1, float(links[i]), float(links[i] - bar[i]))
    for i in range(m - 2):
        if taken[i] and taken[i + 1]:
            continue
        skip = float(x[i] @ x[i + 2])
        level = levels[i] if not np.isnan(levels[i]) else skip
        skip_bar = max(rules.skip_cosine, level - rules.level_drop)
        if skip >= skip_bar:
            join(i, i + 2, skip, skip - skip_bar)
    roots = np.array([root(i) for i in range(m)])
    unique_roots, parts = np.unique(roots, return_inverse=True)
    part_roots = [int(r) for r in unique_roots]
    cohesion = [weakest.get(r, 1.0) for r in part_roots]
    split = [doubt[r][1] if r in doubt else None for r in part_roots]
    return parts.astype(np.intp), cohesion, split


def camera_runs(
    shot_at: Sequence[datetime | None],
    cameras: Sequence[str | None],
    gap_seconds: float | None,
    rules: MomentRules = DEFAULT_RULES,
    unit: NDArray[np.floating] | None = None,
) -> list[NDArray[np.intp]]:
    """The rows of each camera in shooting order, cut by the fixed gap and the cadence
    (with `unit`, the rows' unit vectors: not where the camera only stalled, see `stalls`).
    Rows without a capture time are one run per camera, in row (upload) order; with
    `gap_seconds` None capture time is not used at all (one run per camera, in row order)."""
    by_camera: dict[tuple[str | None, bool], list[int]] = {}
    for row, (moment, camera) in enumerate(zip(shot_at, cameras, strict=True)):
        timed = moment is not None and gap_seconds is not None
        by_camera.setdefault((camera, timed), []).append(row)
    runs: list[NDArray[np.intp]] = []
    for (_, timed), rows in by_camera.items():
        if not timed or gap_seconds is None:
            runs.append(np.array(rows, dtype=np.intp))
            continue
        times = [shot_at[r] for r in rows]
        origin = min(t for t in times if t is not None)
        seconds = np.array([(t - origin).total_seconds() for t in times if t is not None])
        order = np.argsort(seconds, kind="stable")
        ordered = np.array(rows, dtype=np.intp)[order]
        cuts = cadence_cuts(seconds[order], gap_seconds, rules)
        if unit is not None:
            gaps = np.diff(seconds[order]) > gap_seconds
            drops = stalls(unit[ordered], gaps, cuts, rules.level_window)
            cuts &= ~(drops <= rules.stall_drop)  # NaN (no stall measured) keeps the cut
        runs += np.split(ordered, np.flatnonzero(cuts) + 1)
    return runs


def moment_groups(
    unit: NDArray[np.floating],
    shot_at: Sequence[datetime | None],
    cameras: Sequence[str | None],
    gap_seconds: float | None,
    rules: MomentRules = DEFAULT_RULES,
) -> MomentGroups:
    """Each row's moment (rows alone in theirs get -1), with each moment's cohesion and the row
    where a candidate cut was not taken."""
    labels = np.full(unit.shape[0], -1, dtype=np.intp)
    cohesion: dict[int, float] = {}
    split_before: dict[int, int] = {}
    next_id = 0
    for run in camera_runs(shot_at, cameras, gap_seconds, rules, unit):
        parts, weakest, splits = link_run(unit[run], rules)
        for part in range(len(weakest)):
            rows = run[parts == part]
            if rows.size < 2:
                continue
            labels[rows] = next_id
            cohesion[next_id] = weakest[part]
            split = splits[part]
            if split is not None:
                split_before[next_id] = int(run[split])
            next_id += 1
    return MomentGroups(labels, cohesion, split_before)
