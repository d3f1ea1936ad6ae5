"""A lossless JPEG (ITU T.81 process 14, SOF3) encoder for the test RAW factories: Canon's CR2
keeps its sensor data so, as two interleaved components of half the row's width, predictor 1.

One Huffman table serves every component (as LibRaw reads it); a difference of category s
(its bit length) is sent as the category's code, then s bits: the difference itself, or for a
negative one the difference minus 1 in s bits. The entropy-coded data escape each 0xFF byte
with a 0x00.
"""

from __future__ import annotations

import struct

import numpy as np

# Categories 0-14 get 4-bit codes 0000-1110, category 15 the 5-bit code 11110 (no code is all
# ones, as T.81 asks). 14-bit samples never differ by more than 2**15 - 1.
_COUNTS = [0, 0, 0, 15, 1] + [0] * 11  # codes of length 1..16
_CATEGORIES = list(range(16))
_CODES = np.array([*range(15), 0b11110], dtype=np.int64)
_LENGTHS = np.array([4] * 15 + [5], dtype=np.int64)
_ROWS_AT_ONCE = 64  # rows encoded together (bounds the memory of a 24 MP sensor)


def lossless_jpeg(samples: np.ndarray, bits: int = 14, components: int = 2) -> bytes:
    """`samples` (rows x columns, unsigned, < 2**bits) as a lossless JPEG whose frame is
    columns / `components` wide with `components` interleaved components (predictor 1)."""
    height, width = samples.shape
    assert width % components == 0
    assert 1 < components <= 4  # one component: LibRaw misreads its frame header
    differences = samples.astype(np.int32)
    first_column = differences[:, :components].copy()
    differences[:, components:] -= differences[:, :-components].copy()  # the same component
    differences[0, :components] -= 1 << (bits - 1)  # to the left; the first column: above
    differences[1:, :components] -= first_column[:-1]
    body = bytearray()
    carry = np.zeros(0, dtype=np.uint8)
    for start in range(0, height, _ROWS_AT_ONCE):
        stream = np.concatenate([carry, _bits(differences[start : start + _ROWS_AT_ONCE])])
        whole = len(stream) // 8 * 8
        body += np.packbits(stream[:whole]).tobytes()
        carry = stream[whole:]
    if len(carry):
        body += np.packbits(np.concatenate([carry, np.ones(8 - len(carry), np.uint8)])).tobytes()
    return _headers(height, width // components, bits, components) + _stuffed(body) + b"\xff\xd9"


def _bits(differences: np.ndarray) -> np.ndarray:
    """The code bits of `differences` (each category's code, then its extra bits), 0 or 1."""
    flat = differences.ravel().astype(np.int64)
    magnitude = np.abs(flat)
    category = np.zeros(flat.shape, dtype=np.int64)
    nonzero = magnitude > 0
    category[nonzero] = np.floor(np.log2(magnitude[nonzero])).astype(np.int64) + 1
    extra = np.where(flat >= 0, flat, flat + (1 << category) - 1)
    length = _LENGTHS[category] + category
    word = (_CODES[category] << category) | extra
    owner = np.repeat(np.arange(flat.size), length)
    position = np.arange(owner.size) - np.repeat(np.cumsum(length) - length, length)
    return ((word[owner] >> (length[owner] - 1 - position)) & 1).astype(np.uint8)


def _stuffed(body: bytearray) -> bytes:
    return bytes(body).replace(b"\xff", b"\xff\x00")


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def _headers(height: int, width: int, bits: int, components: int) -> bytes:
    frame = struct.pack(">BHHB", bits, height, width, components)
    frame += b"".join(struct.pack(">BBB", index + 1, 0x11, 0) for index in range(components))
    table = bytes([0x00, *_COUNTS, *_CATEGORIES])
    scan = bytes([components])
    scan += b"".join(bytes([index + 1, 0x00]) for index in range(components))
    scan += bytes([1, 0, 0])  # predictor 1, end of selection (unused), no point transform
    return b"\xff\xd8" + _segment(0xFFC4, table) + _segment(0xFFC3, frame) + _segment(0xFFDA, scan)
