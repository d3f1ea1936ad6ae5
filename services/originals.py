"""Where an image's original file is on disk: under STORAGE_ROOT for an upload, where it
was found for an image imported in place (services/import_service.py)."""

from __future__ import annotations

from pathlib import Path

from database.models import Image
from utils.file_handling import StorageLayout, storage_path


def original_path(settings: StorageLayout, image: Image) -> Path | None:
    """The original's path, or None when its stored path is not one we can serve."""
    if image.source_path is not None:
        return Path(image.source_path)
    try:
        return storage_path(settings.storage_root, image.file_path)
    except ValueError:
        return None


def companion_path(settings: StorageLayout, image: Image) -> Path | None:
    """The companion's path (a RAW+JPEG pair's second file), or None when there is none."""
    if image.companion_source_path is not None:
        return Path(image.companion_source_path)
    if image.companion_file_path is None:
        return None
    try:
        return storage_path(settings.storage_root, image.companion_file_path)
    except ValueError:
        return None


def owned_files(settings: StorageLayout, image: Image) -> list[Path]:
    """The files a delete of the image removes: never an original imported in place (it is
    the photographer's), only what we stored: the main file and the companion."""
    paths: list[Path | None] = []
    if image.source_path is None:
        paths.append(original_path(settings, image))
    if image.companion_source_path is None:
        paths.append(companion_path(settings, image))
    return [path for path in paths if path is not None]
