"""One gate every decode goes through, so that memory stays bounded by design.

A 467 KB PNG can hold 240 million 16-bit pixels: decoded, that is 480 MB, and converting it
at full size took gigabytes more. So a decode first says, from the header alone, what its
pixels will cost (width x height x bytes per pixel, after any JPEG draft); the gate admits it
only while at most `concurrency` decodes run and their costs fit in `budget_bytes` together.
A decode that could never fit is refused (`DecodeTooLarge`, a 413 for an upload); one that
would fit later waits up to `wait_seconds`, then gives up (`DecodeBusy`, a 503 or a retry).

The gate is process-wide (decodes from request threads, the worker and thumbnails share one
budget); the application's start-up calls `configure_decode_gate` with its settings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

# Pillow keeps 1-bit, 8-bit and palette pixels in one byte, 16-bit grey in two, and every
# other mode (RGB included) in four.
_ONE_BYTE_MODES = {"1", "L", "P"}
_TWO_BYTE_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
# Decoders that hand Pillow a copy of a buffer of their own hold the pixels twice, briefly.
_COPYING_FORMATS = {"HEIF", "AVIF"}
# After a decode at least this large, free memory goes back to the system (see `_trim`).
TRIM_ABOVE_BYTES = 32 * 1024 * 1024
MB = 1024 * 1024


class DecodeTooLarge(Exception):
    """The picture's pixels alone would take more than the whole decode budget."""

    def __init__(self, cost: int, budget: int) -> None:
        super().__init__(
            f"decoding this image needs about {_mb(cost)} MB of memory, more than the "
            f"server's decode budget of {_mb(budget)} MB (DECODE_MEMORY_MB)"
        )
        self.cost = cost
        self.budget = budget


class DecodeBusy(Exception):
    """No room in the decode budget came free in time; trying again later will work."""


def bytes_per_pixel(mode: str) -> int:
    """What Pillow stores per pixel of an image in `mode`."""
    if mode in _ONE_BYTE_MODES:
        return 1
    if mode in _TWO_BYTE_MODES:
        return 2
    return 4


def decode_cost(img: Image.Image) -> int:
    """Worst-case bytes held by decoding `img`, from its header (after any `draft`)."""
    width, height = img.size
    copies = 2 if (img.format or "") in _COPYING_FORMATS else 1
    return width * height * bytes_per_pixel(img.mode) * copies


class DecodeGate:
    """Admits decodes while at most `concurrency` run and their costs fit in `budget_bytes`."""

    def __init__(self, concurrency: int, budget_bytes: int, wait_seconds: float) -> None:
        if concurrency < 1 or budget_bytes < 1 or wait_seconds < 0:
            raise ValueError("decode gate: concurrency and budget >= 1, wait >= 0")
        self.concurrency = concurrency
        self.budget_bytes = budget_bytes
        self.wait_seconds = wait_seconds
        self._changed = threading.Condition()
        self._running = 0
        self._reserved = 0

    @contextmanager
    def admit(self, cost: int) -> Iterator[None]:
        """Hold a place for a decode of `cost` bytes while the block runs."""
        if cost > self.budget_bytes:
            raise DecodeTooLarge(cost, self.budget_bytes)
        deadline = time.monotonic() + self.wait_seconds
        with self._changed:
            while self._running >= self.concurrency or self._reserved + cost > self.budget_bytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DecodeBusy(
                        f"the server is decoding other large images; try again shortly "
                        f"(this one needs about {_mb(cost)} MB)"
                    )
                self._changed.wait(remaining)
            self._running += 1
            self._reserved += cost
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._reserved -= cost
                self._changed.notify_all()
            if cost >= TRIM_ABOVE_BYTES:
                _trim()

    @property
    def reserved_bytes(self) -> int:
        with self._changed:
            return self._reserved


_gate = DecodeGate(concurrency=2, budget_bytes=640 * MB, wait_seconds=30.0)


def configure_decode_gate(concurrency: int, budget_mb: int, wait_seconds: float) -> DecodeGate:
    """Replace the process's gate (at start-up: decodes in flight keep the old one); return
    the gate it replaced, for `restore_decode_gate` at shutdown."""
    previous = _gate
    restore_decode_gate(DecodeGate(concurrency, budget_mb * MB, wait_seconds))
    return previous


def restore_decode_gate(gate: DecodeGate) -> None:
    global _gate
    _gate = gate


def decode_gate() -> DecodeGate:
    return _gate


@functools.cache
def _malloc_trim() -> ctypes._NamedFuncPointer | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def _trim() -> None:
    # glibc keeps freed heap (and, past its adaptive mmap threshold, large blocks) for reuse:
    # without this, RSS stays at the peak of the largest decode for the life of the process.
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _mb(size: int) -> int:
    return max(1, (size + MB - 1) // MB)
