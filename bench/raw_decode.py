"""Decode 24 MP RAWs to a thumbnail: embedded preview vs half-size, and vs the same JPEG.

Run by hand, never in tests:  python -m bench.raw_decode [--repeats N]   (from the repo root)
Target (issue 21): a 24 MP RAW with a full-size preview -> thumbnail <= 1.5x the same-size JPEG.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from processing.photo import load_oriented_rgb
from tests.factories import gradient_image
from tests.raw_factory import DngSpec, write_dng
from utils.file_handling import make_thumbnail

WIDTH, HEIGHT = 6000, 4000  # 24 MP
THUMB_SIDE = 512
TARGET_RATIO = 1.5


def _ms(action: Callable[[], object], repeats: int) -> float:
    action()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _thumbnail(path: Path) -> Callable[[], object]:
    return lambda: make_thumbnail(load_oriented_rgb(path, THUMB_SIDE), THUMB_SIDE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        full = (WIDTH, HEIGHT)
        raw_preview = write_dng(root / "preview.dng", DngSpec(size=full, preview_size=full))
        raw_half = write_dng(root / "half.dng", DngSpec(size=full, preview_size=None))
        jpeg = root / "same.jpg"
        gradient_image(full).save(jpeg, "JPEG", quality=90, subsampling=0)
        rows = [
            ("24 MP JPEG (quality 90, 4:4:4)", _ms(_thumbnail(jpeg), args.repeats)),
            ("24 MP DNG, full-size preview", _ms(_thumbnail(raw_preview), args.repeats)),
            ("24 MP DNG, no preview (half-size)", _ms(_thumbnail(raw_half), args.repeats)),
        ]
    base = rows[0][1]
    print(
        f"python -m bench.raw_decode --repeats {args.repeats}: decode -> {THUMB_SIDE}px thumbnail"
    )
    for label, ms in rows:
        print(f"{label:38s} {ms:8.1f} ms/image   {ms / base:5.2f}x the JPEG")
    ratio = rows[1][1] / base
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"preview RAW / JPEG = {ratio:.2f}x (target <= {TARGET_RATIO}x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
