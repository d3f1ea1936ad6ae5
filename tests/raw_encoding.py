"""The compressed raw encodings the test RAW factories write, as LibRaw's decoders read them.

All three code each sample's difference from a prediction with a Huffman code of its category
(its bit length), then the category's bits: the difference itself, or for a negative one the
difference minus 1 in that many bits.
- Canon CR2: a lossless JPEG (ITU T.81 process 14, SOF3): two interleaved components of half
  the row's width, predictor 1 (the same component to the left; the first column from above);
  its entropy-coded data escape each 0xFF byte with a 0x00 (`lossless_jpeg`).
- Nikon's lossless NEF and Pentax's compressed PEF: every sample predicted from the one two
  columns to its left (the same colour), the first two columns from the row two above (the
  first two rows from 0); a plain bit stream with Huffman tables of the maker's
  (`two_column_differences`, `huffman_bits`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

_ROWS_AT_ONCE = 64  # rows coded together (bounds the memory of a 24 MP sensor)


class Huffman:
    """A canonical Huffman table of categories: `counts[n]` codes of n + 1 bits, given to
    `categories` in order (a JPEG DHT's layout)."""

    def __init__(self, counts: Sequence[int], categories: Sequence[int]) -> None:
        assert sum(counts) == len(categories)
        assert len(counts) == 16
        self.counts, self.categories = list(counts), list(categories)
        self.codes = np.zeros(max(categories) + 1, dtype=np.int64)
        self.lengths = np.zeros(max(categories) + 1, dtype=np.int64)
        code, index = 0, 0
        for length, count in enumerate(counts, start=1):
            for _ in range(count):
                self.codes[categories[index]] = code
                self.lengths[categories[index]] = length
                code, index = code + 1, index + 1
            code <<= 1


# Categories 0-14 get 4-bit codes 0000-1110, category 15 the 5-bit code 11110 (no code is all
# ones, as T.81 asks). 14-bit samples never differ by more than 2**15 - 1.
JPEG_TABLE = Huffman([0, 0, 0, 15, 1] + [0] * 11, list(range(16)))
# LibRaw's nikon_tree[5], "14-bit lossless" (NEFCompression 3).
NIKON_14_BIT_LOSSLESS = Huffman(
    [0, 1, 4, 2, 2, 3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0],
    [7, 6, 8, 5, 9, 4, 10, 3, 11, 12, 2, 0, 1, 13, 14],
)


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
    body = huffman_bits(differences, JPEG_TABLE).replace(b"\xff", b"\xff\x00")
    return _jpeg_headers(height, width // components, bits, components) + body + b"\xff\xd9"


def two_column_differences(samples: np.ndarray) -> np.ndarray:
    """Nikon's and Pentax's differences: from two columns to the left, the first two columns
    from two rows above, the first two rows' from 0."""
    differences = samples.astype(np.int32)
    first_columns = differences[:, :2].copy()
    differences[:, 2:] -= differences[:, :-2].copy()
    differences[2:, :2] -= first_columns[:-2]
    return differences


def huffman_bits(differences: np.ndarray, table: Huffman) -> bytes:
    """The bit stream of `differences` coded with `table`, padded with 1 bits to a byte."""
    body = bytearray()
    carry = np.zeros(0, dtype=np.uint8)
    for start in range(0, len(differences), _ROWS_AT_ONCE):
        stream = np.concatenate([carry, _bits(differences[start : start + _ROWS_AT_ONCE], table)])
        whole = len(stream) // 8 * 8
        body += np.packbits(stream[:whole]).tobytes()
        carry = stream[whole:]
    if len(carry):
        body += np.packbits(np.concatenate([carry, np.ones(8 - len(carry), np.uint8)])).tobytes()
    return bytes(body)


def _bits(differences: np.ndarray, table: Huffman) -> np.ndarray:
    """The code bits of `differences` (each category's code, then its extra bits), 0 or 1."""
    flat = differences.ravel().astype(np.int64)
    magnitude = np.abs(flat)
    category = np.zeros(flat.shape, dtype=np.int64)
    nonzero = magnitude > 0
    category[nonzero] = np.floor(np.log2(magnitude[nonzero])).astype(np.int64) + 1
    assert category.max() < len(table.lengths)  # a difference the table has no code for
    assert table.lengths[category].min() > 0
    extra = np.where(flat >= 0, flat, flat + (1 << category) - 1)
    length = table.lengths[category] + category
    word = (table.codes[category] << category) | extra
    owner = np.repeat(np.arange(flat.size), length)
    position = np.arange(owner.size) - np.repeat(np.cumsum(length) - length, length)
    return ((word[owner] >> (length[owner] - 1 - position)) & 1).astype(np.uint8)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def _jpeg_headers(height: int, width: int, bits: int, components: int) -> bytes:
    frame = struct.pack(">BHHB", bits, height, width, components)
    frame += b"".join(struct.pack(">BBB", index + 1, 0x11, 0) for index in range(components))
    table = bytes([0x00, *JPEG_TABLE.counts, *JPEG_TABLE.categories])
    scan = bytes([components])
    scan += b"".join(bytes([index + 1, 0x00]) for index in range(components))
    scan += bytes([1, 0, 0])  # predictor 1, end of selection (unused), no point transform
    return b"\xff\xd8" + _segment(0xFFC4, table) + _segment(0xFFC3, frame) + _segment(0xFFDA, scan)


# Sony's ARW2 tone curve (tag 0x7010 of the raw IFD, four knees times 4): 11-bit codes, doubled,
# run through a curve of slopes 1, 2, 4, 8, 16 between the knees (LibRaw 0.22 keeps the
# curve's value; dcraw divided it by 4). These knees reach 15,088, above the samples' 14,000.
SONY_CURVE_KNEES = (2000, 2600, 3200, 3800)


def sony_curve() -> np.ndarray:
    """The 14-bit value of each 11-bit ARW2 code, as LibRaw builds it from the knees."""
    curve = np.arange(4096, dtype=np.int64)
    knees = [0, *SONY_CURVE_KNEES, 4095]
    for slope, (low, high) in enumerate(zip(knees, knees[1:], strict=False)):
        for index in range(low + 1, high + 1):
            curve[index] = curve[index - 1] + (1 << slope)
    return curve[0::2]


def sony_arw2(samples: np.ndarray) -> tuple[bytes, np.ndarray]:
    """`samples` (14-bit; rows a multiple of 32 wide) in Sony's ARW2 code, and the samples
    LibRaw decodes from it (the code is lossy). Each row is cut into blocks of 16 samples of
    one colour (every other column of 32); a block of 16 bytes holds its largest and
    smallest 11-bit codes, their places, and the 14 others as 7-bit steps above the smallest,
    shifted right by as much as the block's range needs."""
    height, width = samples.shape
    assert width % 32 == 0
    values = sony_curve()
    codes = np.clip(np.searchsorted(values, samples), 0, 2047)
    lower = np.clip(codes - 1, 0, 2047)
    nearer = np.abs(values[lower] - samples) < np.abs(values[codes] - samples)
    codes = np.where(nearer, lower, codes)
    blocks = codes.reshape(height, width // 32, 16, 2).transpose(0, 1, 3, 2).reshape(-1, 16)
    top, bottom = blocks.max(axis=1), blocks.min(axis=1)
    at_top = blocks.argmax(axis=1)
    at_bottom = np.where(top == bottom, (at_top + 1) % 16, blocks.argmin(axis=1))
    shift = sum(((0x80 << k) <= top - bottom).astype(np.int64) for k in range(4))
    steps = np.minimum((blocks - bottom[:, None]) >> shift[:, None], 0x7F)
    others = np.ones(blocks.shape, dtype=bool)
    rows = np.arange(len(blocks))
    others[rows, at_top] = others[rows, at_bottom] = False
    decoded = np.minimum((steps << shift[:, None]) + bottom[:, None], 0x7FF)
    decoded[rows, at_top], decoded[rows, at_bottom] = top, bottom
    bits = np.zeros((len(blocks), 128), dtype=np.uint8)
    for value, start, size in [(top, 0, 11), (bottom, 11, 11), (at_top, 22, 4), (at_bottom, 26, 4)]:
        for bit in range(size):
            bits[:, start + bit] = (value >> bit) & 1
    place = 30 + 7 * (np.cumsum(others, axis=1) - 1)
    owner, column = np.nonzero(others)
    for bit in range(7):
        bits[owner, place[owner, column] + bit] = (steps[owner, column] >> bit) & 1
    data = np.packbits(bits, axis=1, bitorder="little").tobytes()
    shown = values[decoded].reshape(height, width // 32, 2, 16).transpose(0, 1, 3, 2)
    return data, shown.reshape(height, width)
