"""Decode 24 MP RAWs of each format to a thumbnail: preview vs half-size, vs the same JPEG.

Formats: DNG, NEF, CR2, ARW, PEF, RAF, CR3, ORF, RW2 (the synthetic files of
tests/raw_factory.py and tests/raw_factory_more.py).
Run by hand, never in tests:  python -m bench.raw_decode [--repeats N] [--kinds DNG,NEF,...]
(from the repo root). Target (issue 21): a 24 MP RAW with a full-size preview -> thumbnail
<= 1.5x the same-size JPEG.
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
from tests.raw_factory_more import CAMERAS, any_raw_bytes
from utils.file_handling import make_thumbnail

WIDTH, HEIGHT = 6000, 4000  # 24 MP
# Sony's rows are a multiple of 32 wide (the ILCE-7M3's: 6048); Panasonic's RawFormat 5 rows
# whole 9-sample blocks.
SIZES = {"ARW": (6048, 4000), "RW2": (6003, 4002)}
# The test factory's CRX coder runs in Python (a minute or more for 24 MP): a CR3 is
# timed on its preview only, over a 600 x 400 sensor (the preview path never reads it).
SMALL_SENSOR = {"CR3": (600, 400)}
THUMB_SIDE = 512
TARGET_RATIO = 1.5
KINDS = ["DNG", *CAMERAS]


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
    parser.add_argument("--kinds", default=",".join(KINDS), help="formats, comma-separated")
    args = parser.parse_args(argv)
    kinds = [kind.strip().upper() for kind in args.kinds.split(",") if kind.strip()]
    full = (WIDTH, HEIGHT)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        jpeg = root / "same.jpg"
        gradient_image(full).save(jpeg, "JPEG", quality=90, subsampling=0)
        base = _ms(_thumbnail(jpeg), args.repeats)
        rows = [("24 MP JPEG (quality 90, 4:4:4)", base)]
        previews = []
        for kind in kinds:
            for preview, label in [(full, "full-size preview"), (None, "half-size")]:
                if kind in SMALL_SENSOR and preview is None:
                    continue
                path = root / f"{label[:4]}.{kind.lower()}"
                size = SMALL_SENSOR.get(kind, SIZES.get(kind, full))
                path.write_bytes(any_raw_bytes(kind, size=size, preview_size=preview))
                ms = _ms(_thumbnail(path), args.repeats)
                path.unlink()
                rows.append((f"24 MP {kind}, {label}", ms))
                if preview is not None:
                    previews.append(ms)
    print(
        f"python -m bench.raw_decode --repeats {args.repeats} --kinds {','.join(kinds)}: "
        f"decode -> {THUMB_SIDE}px thumbnail"
    )
    for label, ms in rows:
        print(f"{label:38s} {ms:8.1f} ms/image   {ms / base:5.2f}x the JPEG")
    ratio = max(previews) / base
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"slowest preview RAW / JPEG = {ratio:.2f}x (target <= {TARGET_RATIO}x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
