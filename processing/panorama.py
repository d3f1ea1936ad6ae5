"""Panorama sweeps told from looks: neighbours overlap, shifted a large share of the frame.

Each judged image keeps a tiny grey copy of itself (`look_of`, LOOK_SIDE x LOOK_SIDE, squeezed
to a square whatever its aspect, so a shift is read as a share of the frame's width and height).
Two frames' shift is found by phase correlation (numpy FFT), and its sign resolved by which of
the wrapped candidates lines the overlaps up best (normalised correlation of the overlap).

A step of a sweep: the best shift is SWEEP_MIN_SHIFT to SWEEP_MAX_SHIFT of the frame along one
axis, mostly along it, its overlap matches (STEP_MIN_MATCH) and matches clearly better than the
frames laid on each other unshifted (STEP_MIN_GAIN): the whole scene moved, not a subject over a
still background. A sweep is a run of at least MIN_SWEEP_FRAMES frames whose steps all go the
same way. Measured with python -m bench.panoramas (bench/results/panoramas.txt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

LOOK_SIDE = 48
SWEEP_MIN_SHIFT = 0.2
SWEEP_MAX_SHIFT = 0.8
# The shift across the sweep's axis, as a share of the shift along it: a hand-held sweep drifts
# a little up or down, a diagonal is not a sweep.
MAX_CROSS_SHARE = 0.35
STEP_MIN_MATCH = 0.5
STEP_MIN_GAIN = 0.25
MIN_SWEEP_FRAMES = 3
# A thinner overlap (a share of the frame's width or height) says nothing: a strip of a few
# pixels matches something by chance.
MIN_OVERLAP_SHARE = 0.15
PEAKS_TRIED = 10


@dataclass(frozen=True, slots=True)
class Step:
    """How the second of two frames lies on the first: shares of the frame (positive: the
    scene moved left / up, the camera turned right / down), and how well the overlap matches
    at that shift and unshifted."""

    dx: float
    dy: float
    match: float
    unshifted: float

    def direction(self) -> tuple[int, int] | None:
        """The sweep direction of this step ((1, 0): rightwards...), None when it is no step of
        a sweep."""
        along, across = (self.dx, self.dy) if abs(self.dx) >= abs(self.dy) else (self.dy, self.dx)
        if not SWEEP_MIN_SHIFT <= abs(along) <= SWEEP_MAX_SHIFT:
            return None
        if abs(across) > MAX_CROSS_SHARE * abs(along):
            return None
        if self.match < STEP_MIN_MATCH or self.match - self.unshifted < STEP_MIN_GAIN:
            return None
        sign = 1 if along > 0 else -1
        return (sign, 0) if abs(self.dx) >= abs(self.dy) else (0, sign)


def look_of(img: Image.Image) -> bytes:
    """The tiny grey copy of an (oriented) image that sweep detection compares."""
    grey = img.convert("L").resize((LOOK_SIDE, LOOK_SIDE), Image.Resampling.BOX)
    return grey.tobytes()


def look_array(look: bytes) -> NDArray[np.float64] | None:
    """A stored look as a square array; None when it is not one `look_of` made."""
    if len(look) != LOOK_SIDE * LOOK_SIDE:
        return None
    return np.frombuffer(look, dtype=np.uint8).reshape(LOOK_SIDE, LOOK_SIDE).astype(np.float64)


def step_between(first: NDArray[np.float64], second: NDArray[np.float64]) -> Step:
    """The shift that lays `second` on `first` best, by phase correlation."""
    unshifted = overlap_match(first, second, 0, 0)
    if unshifted > 1.0 - STEP_MIN_GAIN:
        # No shift can match STEP_MIN_GAIN better: not a step of a sweep (most bursts), and
        # not worth the search.
        return Step(0.0, 0.0, unshifted, unshifted)
    a, b = first - first.mean(), second - second.mean()
    cross = np.fft.fft2(a) * np.conj(np.fft.fft2(b))
    surface = np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-9)))
    height, width = first.shape
    best = (-1.0, 0, 0)
    # The highest peak is often the frames laid on each other unshifted (their borders, a sky's
    # gradient): the few highest peaks are tried, each with its wrapped twins.
    for peak in np.argsort(surface, axis=None)[-PEAKS_TRIED:]:
        py, px = divmod(int(peak), width)
        for sy in {py, py - height}:
            for sx in {px, px - width}:
                match = overlap_match(first, second, sx, sy)
                if match > best[0]:
                    best = (match, sx, sy)
    match, sx, sy = best
    return Step(sx / width, sy / height, match, unshifted)


def overlap_match(
    first: NDArray[np.float64], second: NDArray[np.float64], sx: int, sy: int
) -> float:
    """Normalised correlation of the part both frames see when `second` is moved by (sx, sy):
    first[y, x] is second[y - sy, x - sx]."""
    height, width = first.shape
    a = first[max(sy, 0) : height + min(sy, 0), max(sx, 0) : width + min(sx, 0)]
    b = second[max(-sy, 0) : height + min(-sy, 0), max(-sx, 0) : width + min(-sx, 0)]
    if min(a.shape[0] / height, a.shape[1] / width) < MIN_OVERLAP_SHARE:
        return -1.0
    # Compared by their gradients: a sky's smooth gradient matches itself at any shift.
    ga = np.concatenate([np.diff(a, axis=0).ravel(), np.diff(a, axis=1).ravel()])
    gb = np.concatenate([np.diff(b, axis=0).ravel(), np.diff(b, axis=1).ravel()])
    ga, gb = ga - ga.mean(), gb - gb.mean()
    norm = float(np.sqrt((ga * ga).sum() * (gb * gb).sum()))
    return float((ga * gb).sum()) / norm if norm > 0 else -1.0


def sweeps_in(looks: Sequence[NDArray[np.float64] | None]) -> list[range]:
    """The sweeps in a run of consecutive frames: ranges of their positions, each at least
    MIN_SWEEP_FRAMES frames stepping the same way."""
    directions = [
        None if a is None or b is None else step_between(a, b).direction()
        for a, b in zip(looks, looks[1:], strict=False)
    ]
    found: list[range] = []
    start = 0
    for i in range(1, len(directions) + 1):
        if i == len(directions) or directions[i] is None or directions[i] != directions[start]:
            if directions and directions[start] is not None and i - start + 1 >= MIN_SWEEP_FRAMES:
                found.append(range(start, i + 1))
            start = i
    return found
