"""Where the quality judge's CPU goes, and what cheaper face searches would find instead.

    python -m bench.judge_cost [--repeats 3]

CPU ms per image (`time.thread_time`, min over --repeats) of each part of `assess_quality` and
of the thumbnail, on three sets decoded as the worker decodes them (side 512): bench.ingest's
4000x3000 photos, real photographs of 1600 px and more (the MATE, GNOME and Lomiri wallpaper
packages), and the real frames with faces of tests/data and the carphone video. Then the face
search (OpenCV's Haar cascade, `processing.quality.detect_faces`) with other search sizes,
scale steps and smallest faces: its CPU, and how many of the shipped search's faces each finds
again (a box overlapping one by more than half), on the same sets.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from bench.debian_data import background_photos, lomiri_photos
from bench.ingest import make_photo
from bench.pypi_data import carphone_frames
from processing import quality
from processing.panorama import look_of
from processing.photo import load_oriented_rgb
from processing.quality import QUALITY_SIDE
from utils.file_handling import make_thumbnail

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
Box = tuple[int, int, int, int]
# (search side, scale step, smallest face in search pixels); the first is the shipped one.
SEARCHES = (
    (quality.FACE_SIDE, quality.FACE_SCALE_STEP, quality.FACE_MIN_SIDE),
    (320, 1.2, 28),
    (320, 1.25, 24),
    (320, 1.3, 24),
    (288, 1.2, 24),
    (256, 1.2, 24),
)


def cpu_ms(work: Callable[[], object], count: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        work()
        best = min(best, time.thread_time() - start)
    return 1000 * best / count


def photo_sets(tmp: Path) -> dict[str, list[Image.Image]]:
    synthetic = []
    for seed in range(8):
        path = tmp / f"photo{seed}.jpg"
        path.write_bytes(make_photo(seed))
        synthetic.append(load_oriented_rgb(path, QUALITY_SIDE))
    real = []
    for path in [*background_photos(), *lomiri_photos()]:
        with Image.open(path) as img:
            large = max(img.size) >= 1600 and path.suffix.lower() in (".jpg", ".jpeg")
        if large:
            real.append(load_oriented_rgb(path, QUALITY_SIDE))
    frames = sorted([*DATA.glob("moments/*.jpg"), *DATA.glob("eyes/*.png")])
    faces = [load_oriented_rgb(p, QUALITY_SIDE) for p in frames] + carphone_frames()[::4]
    return {
        "bench.ingest photos 4000x3000": synthetic,
        "real photographs >= 1600 px": real,
        "real frames with faces": faces,
    }


def part_table(images: list[Image.Image], repeats: int) -> list[tuple[str, float]]:
    n = len(images)
    greys = [quality.quality_grey(img) for img in images]
    noises = [quality.noise_variance(grey) for grey in greys]
    return [
        (
            "assess_quality (all of it)",
            cpu_ms(lambda: [*map(quality.assess_quality, images)], n, repeats),
        ),
        ("  grey at 512", cpu_ms(lambda: [*map(quality.quality_grey, images)], n, repeats)),
        ("  noise", cpu_ms(lambda: [*map(quality.noise_variance, greys)], n, repeats)),
        (
            "  tiles",
            cpu_ms(
                lambda: [quality.tile_sharpness(g, v) for g, v in zip(greys, noises, strict=True)],
                n,
                repeats,
            ),
        ),
        (
            "  face search (Haar cascade)",
            cpu_ms(lambda: [*map(quality.detect_faces, greys)], n, repeats),
        ),
        ("  motion", cpu_ms(lambda: [*map(quality.motion_blur_score, greys)], n, repeats)),
        ("  exposure", cpu_ms(lambda: [*map(quality.exposure_score, greys)], n, repeats)),
        ("look (panoramas)", cpu_ms(lambda: [*map(look_of, images)], n, repeats)),
        (
            "thumbnail resize",
            cpu_ms(lambda: [make_thumbnail(img, 512) for img in images], n, repeats),
        ),
    ]


def overlap(a: Box, b: Box) -> float:
    width = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    height = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    shared = width * height
    return shared / (a[2] * a[3] + b[2] * b[3] - shared)


def search_table(images: list[Image.Image], repeats: int) -> None:
    greys = [quality.quality_grey(img) for img in images]
    shipped = [quality.detect_faces(grey, *SEARCHES[0]) for grey in greys]
    for side, step, smallest in SEARCHES:
        ms = cpu_ms(
            lambda s=side, t=step, m=smallest: [quality.detect_faces(g, s, t, m) for g in greys],
            len(greys),
            repeats,
        )
        found = [quality.detect_faces(grey, side, step, smallest) for grey in greys]
        again = sum(
            any(overlap(a, b) > 0.5 for b in new)
            for old, new in zip(shipped, found, strict=True)
            for a in old
        )
        same = sum(old == new for old, new in zip(shipped, found, strict=True))
        print(
            f"  side {side}, step {step}, smallest {smallest:>2}: {ms:5.1f} ms/img; faces "
            f"{sum(map(len, found)):>2} (shipped {sum(map(len, shipped))}, found again {again}); "
            f"identical boxes on {same}/{len(greys)} images"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"command: python -m bench.judge_cost {' '.join(sys.argv[1:])}".rstrip())
    print(f"load average at start {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-judge-") as tmp:
        sets = photo_sets(Path(tmp))
    for name, images in sets.items():
        sizes = sorted({img.size for img in images})
        print(f"\n{name}: {len(images)} images, decoded at {sizes[0]}..{sizes[-1]}; CPU ms/img")
        for part, ms in part_table(images, args.repeats):
            print(f"  {part:<40} {ms:6.2f}")
        print("  face searches:")
        search_table(images, args.repeats)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
