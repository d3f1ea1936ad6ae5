"""Where an image's original file is on disk."""

from __future__ import annotations

from pathlib import Path

from database.models import Image
from utils.file_handling import StorageLayout, storage_path


def original_path(settings: StorageLayout, image: Image) -> Path | None:
    """The original's path, or None when its stored path is not one we can serve."""
    try:
        return storage_path(settings.storage_root, image.file_path)
    except ValueError:
        return None
