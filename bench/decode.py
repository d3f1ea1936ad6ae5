"""Decode a 24 MP JPEG to the embedding input: full decode vs Pillow's draft (DCT-scaled) decode.

Run by hand, never in tests:  python -m bench.decode [--repeats N]   (from the repo root)
Target (PERFORMANCE.md): draft decode to the 224-px embedding input >= 5x faster than full decode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from processing.imaging import to_rgb
from processing.photo import load_oriented_rgb

WIDTH, HEIGHT = 6000, 4000  # 24 MP, a typical full-frame camera file
EMBED_SIDE = 224
THUMB_SIDE = 512
TARGET_RATIO = 5.0
# (label, grain sigma, JPEG quality): 24 MP camera JPEGs run from ~3 MB (clean, base ISO)
# to ~10 MB (high ISO, finest quality); the draft speed-up depends on that size.
PROFILES = [
    ("clean, base ISO", 1.5, 90),
    ("typical", 3.0, 92),
    ("grainy, high ISO", 6.0, 95),
]


def write_test_jpeg(path: Path, grain: float, quality: int, seed: int = 0) -> Path:
    """A 6000x4000 JPEG with photo-like statistics: pink (1/f) luminance texture over eight
    octaves, smooth chroma, Gaussian sensor grain. Grain and quality set the file's entropy,
    which is what a draft decode cannot skip (every DCT coefficient is still Huffman-decoded)."""
    rng = np.random.default_rng(seed)
    luma = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    for octave in range(8):
        small = rng.normal(0.0, 1.0, (16 * 2**octave, 24 * 2**octave)).astype(np.float32)
        layer = Image.fromarray(small, mode="F").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
        luma += 0.55**octave * np.asarray(layer)
    luma = 128.0 + 40.0 * luma / luma.std() + rng.normal(0.0, grain, luma.shape).astype(np.float32)
    chroma = [
        128.0
        + 25.0
        * np.asarray(
            Image.fromarray(rng.normal(0.0, 1.0, (8, 12)).astype(np.float32), mode="F").resize(
                (WIDTH, HEIGHT), Image.Resampling.BICUBIC
            )
        )
        for _ in range(2)
    ]
    ycbcr = np.clip(np.stack([luma, *chroma], axis=-1), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # shot in portrait: both paths pay for applying the orientation
    Image.fromarray(ycbcr, mode="YCbCr").convert("RGB").save(path, quality=quality, exif=exif)
    return path


def full_decode(path: Path) -> Image.Image:
    """The baseline: decode every pixel, orient, convert."""
    with Image.open(path) as img:
        img.load()
        return to_rgb(ImageOps.exif_transpose(img))


def to_embedding_input(img: Image.Image) -> Image.Image:
    return img.resize((EMBED_SIDE, EMBED_SIDE), Image.Resampling.BILINEAR)


def to_thumbnail(img: Image.Image) -> Image.Image:
    img.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    return img


def bench_file(path: Path, repeats: int) -> dict[str, float]:
    """Median seconds of each decode path for one file, the paths interleaved round by round
    so that load from other processes on a shared machine hits them all alike."""
    tasks: dict[str, Callable[[], object]] = {
        "full decode + resize to 224": lambda: to_embedding_input(full_decode(path)),
        "draft decode (224) + resize": lambda: to_embedding_input(
            load_oriented_rgb(path, EMBED_SIDE)
        ),
        "full decode + thumbnail 512": lambda: to_thumbnail(full_decode(path)),
        "draft decode (512) + thumbnail": lambda: to_thumbnail(load_oriented_rgb(path, THUMB_SIDE)),
    }
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for task in tasks.values():
        task()  # warm-up: page cache, lazy imports
    for _ in range(repeats):
        for name, task in tasks.items():
            started = time.perf_counter()
            task()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(samples) for name, samples in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="Full vs draft JPEG decode of a 24 MP file.")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for label, grain, quality in PROFILES:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_test_jpeg(Path(tmp) / "24mp.jpg", grain, quality)
            size_mb = path.stat().st_size / 1e6
            medians = bench_file(path, args.repeats)
            draft_size = load_oriented_rgb(path, EMBED_SIDE).size
        print(f"\n{label}: {WIDTH}x{HEIGHT} JPEG q{quality}, {size_mb:.1f} MB")
        print(f"  draft decodes at {draft_size[0]}x{draft_size[1]} before the final resize")
        for name, seconds in medians.items():
            print(f"  {name:32s} {seconds * 1000:7.1f} ms  (median of {args.repeats})")
        embed = medians["full decode + resize to 224"] / medians["draft decode (224) + resize"]
        thumb = medians["full decode + thumbnail 512"] / medians["draft decode (512) + thumbnail"]
        verdict = "meets" if embed >= TARGET_RATIO else "MISSES"
        print(f"  embedding input: draft {embed:.1f}x faster ({verdict} the >= {TARGET_RATIO:g}x)")
        print(f"  thumbnail 512:   draft {thumb:.1f}x faster")
    print(
        f"\ncommand: cd {Path.cwd()} && {sys.executable} -m bench.decode --repeats {args.repeats}"
    )


if __name__ == "__main__":
    main()
