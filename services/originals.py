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


def owned_files(settings: StorageLayout, image: Image) -> list[Path]:
    """The files a delete of the image removes: never an original imported in place (it is
    the photographer's), only what we stored."""
    if image.source_path is not None:
        return []
    path = original_path(settings, image)
    return [path] if path is not None else []
