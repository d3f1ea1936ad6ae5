"""The upload's check decode, handed on to the worker so that each photo is decoded once.

Validation decodes every upload (the contract: only a decodable image is stored). It decodes
at the size the worker needs (thumbnail, quality judge, model) and offers the result here,
keyed by the file's SHA-256; the worker takes it instead of decoding the file again. The
pixels are a function of the bytes alone, so an entry is right for any row with that hash,
whoever committed it. This is only a shortcut: an entry that is missing (the shelf was full,
it expired, the process restarted, the worker runs elsewhere) costs one decode, nothing else.

Memory stays bounded: at most `capacity_bytes` of pixels are held (an offer that does not fit
is dropped, so under a long upload the oldest, first-processed entries stay), and an entry
nobody took within `ttl_seconds` (its upload rolled back, its image was deleted) is dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image

# 32 decodes of a 12 MP photo at 1/4 scale (1000x750, 4 bytes a pixel in Pillow).
DEFAULT_CAPACITY_BYTES = 96 * 1024 * 1024
DEFAULT_TTL_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class _Entry:
    pixels: Image.Image
    side: int
    size: int
    since: float


def pixel_bytes(img: Image.Image) -> int:
    return img.width * img.height * 4


class DecodeShelf:
    """Decoded uploads waiting for the worker, by content hash, within a memory budget."""

    def __init__(self, capacity_bytes: int, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self.capacity_bytes = capacity_bytes
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._held = 0

    def offer(self, key: str, pixels: Image.Image, side: int) -> bool:
        """Keep `pixels` (decoded for a longest side of at least `side`) for the worker;
        False when they do not fit."""
        size = pixel_bytes(pixels)
        with self._lock:
            self._expire(time.monotonic())
            if key in self._entries or self._held + size > self.capacity_bytes:
                return False
            self._entries[key] = _Entry(pixels, side, size, time.monotonic())
            self._held += size
            return True

    def take(self, key: str, side: int) -> Image.Image | None:
        """The pixels offered for `key` if they serve a longest side of `side` (they leave the
        shelf either way), else None."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return None
            self._held -= entry.size
        return entry.pixels if entry.side >= side else None

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return self._held

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _expire(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.since < self.ttl_seconds:
                return
            del self._entries[key]
            self._held -= entry.size


# The process's shelf. Empty capacity (nothing kept) until the wiring of a backend that runs
# the pipeline in this process sets one (`configure_shelf`).
_shelf = DecodeShelf(capacity_bytes=0)


def configure_shelf(capacity_bytes: int) -> DecodeShelf:
    """Replace the process's shelf; return the one it replaced (for `restore_shelf`)."""
    previous = _shelf
    restore_shelf(DecodeShelf(capacity_bytes))
    return previous


def restore_shelf(shelf: DecodeShelf) -> None:
    global _shelf
    _shelf = shelf


def decode_shelf() -> DecodeShelf:
    return _shelf
