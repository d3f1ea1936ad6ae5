"""Real photographs and video for benchmarks, from Debian packages (no install needed).

`apt-get download` fetches a package's .deb into a cache folder and `dpkg -x` unpacks it there;
nothing is installed and nothing is fetched twice. The cache is `PIXAL_BENCH_DATA`
(default `~/.cache/pixal-judge/debian`).

Packages used by the benchmarks:
- `opencv-doc`: real videos and photo sequences under `usr/share/doc/opencv-doc/examples/data`
- `mate-backgrounds`, `gnome-backgrounds`: real photographs under `usr/share/backgrounds`
- `lomiri-wallpapers-16.04`, `lomiri-wallpapers-20.04`: the Ubuntu community's wallpaper
  contest photographs (other photographers and cameras; CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0 each,
  as their copyright file says), under `usr/share/backgrounds`
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
BACKGROUNDS = "usr/share/backgrounds"


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "pixal-judge" / "debian"
    return Path(os.environ.get("PIXAL_BENCH_DATA", default))


def package_root(package: str) -> Path:
    """The folder `package`'s files are unpacked under (download and unpack on first use)."""
    root = cache_dir() / package
    done = root / ".unpacked"
    if done.exists():
        return root
    downloads = cache_dir() / "debs"
    downloads.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", package], cwd=downloads, check=True)
    deb = max(downloads.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    done.touch()
    return root


def opencv_data() -> Path:
    """opencv-doc's sample data: videos, photo sequences, single photographs."""
    return package_root("opencv-doc") / OPENCV_DATA


def background_photos() -> list[Path]:
    """Real photographs from the MATE and GNOME wallpaper packages (JPEG/PNG/WebP, no SVG)."""
    photos: list[Path] = []
    for package in ("mate-backgrounds", "gnome-backgrounds"):
        base = package_root(package) / BACKGROUNDS
        photos += sorted(
            p for p in base.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}
        )
    return photos


def lomiri_photos() -> list[Path]:
    """The Ubuntu wallpaper contest's pictures shipped by Lomiri (photographs and artwork)."""
    photos: list[Path] = []
    for package in ("lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04"):
        photos += sorted((package_root(package) / BACKGROUNDS).glob("*.jpg"))
    return photos
