"""The decode gate: concurrency and memory bounds, and strip-wise conversion that matches a
whole-picture conversion."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from processing import imaging
from processing.decode_gate import (
    MB,
    DecodeBusy,
    DecodeGate,
    DecodeTooLarge,
    configure_decode_gate,
    decode_cost,
    decode_gate,
    restore_decode_gate,
)
from processing.imaging import open_image, reduced_rgb, to_rgb
from processing.photo import load_oriented_rgb
from tests.factories import blank_png, jpeg_bytes

ROOT = Path(__file__).resolve().parents[2]


def test_cost_is_read_from_the_header_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(blank_png(4000, 3000, bit_depth=16))
    with open_image(path) as img:
        assert decode_cost(img) == 4000 * 3000 * 2  # 16-bit grey: two bytes a pixel
        assert img._im is None  # nothing decoded yet


def test_a_jpeg_costs_its_draft_size(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes((2048, 1536)))
    with open_image(path) as img:
        full = decode_cost(img)
        img.draft("RGB", (256, 192))
        assert decode_cost(img) == full // 64  # 1/8 scale on each side


def test_the_gate_bounds_concurrent_decodes() -> None:
    gate = DecodeGate(concurrency=2, budget_bytes=100, wait_seconds=30)
    lock = threading.Lock()
    running = peak = 0
    meet = threading.Barrier(2, timeout=5)

    def decode() -> None:
        nonlocal running, peak
        with gate.admit(10):
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                meet.wait()
            except threading.BrokenBarrierError:
                pass
            with lock:
                running -= 1

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(decode) for _ in range(6)]:
            future.result(30)
    assert peak == 2
    assert gate.reserved_bytes == 0


def test_the_gate_keeps_costs_within_the_budget() -> None:
    gate = DecodeGate(concurrency=4, budget_bytes=100, wait_seconds=0.2)
    with gate.admit(60):
        with pytest.raises(DecodeBusy):
            with gate.admit(60):
                pass  # pragma: no cover - refused
        with gate.admit(40):
            assert gate.reserved_bytes == 100
    with gate.admit(60):
        pass  # room again once the first decode is done


def test_a_decode_larger_than_the_budget_is_refused_at_once() -> None:
    gate = DecodeGate(concurrency=1, budget_bytes=100 * MB, wait_seconds=600)
    with pytest.raises(DecodeTooLarge, match="DECODE_MEMORY_MB"):
        with gate.admit(101 * MB):
            pass  # pragma: no cover - refused


def test_load_goes_through_the_gate(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(blank_png(4000, 3000, bit_depth=16))  # 23 MB decoded
    previous = configure_decode_gate(concurrency=1, budget_mb=16, wait_seconds=0)
    try:
        with pytest.raises(DecodeTooLarge):
            load_oriented_rgb(path, 256)
        configure_decode_gate(concurrency=1, budget_mb=64, wait_seconds=0)
        assert max(load_oriented_rgb(path, 256).size) >= 256
        assert decode_gate().reserved_bytes == 0
    finally:
        restore_decode_gate(previous)


def _picture(mode: str, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(7)
    width, height = size
    if mode == "I;16":
        ramp = np.linspace(0, 60000, width * height).reshape(height, width).astype(np.uint16)
        return Image.fromarray(ramp)  # uint16: I;16
    if mode == "F":
        ramp = np.linspace(-3, 9, width * height).reshape(height, width).astype(np.float32)
        return Image.fromarray(ramp)  # float32: F
    rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    img = Image.fromarray(rgba, "RGBA")
    return img if mode == "RGBA" else img.convert(mode)


@pytest.mark.parametrize("mode", ["I;16", "F", "1", "L", "RGB", "RGBA", "P", "CMYK", "LA"])
@pytest.mark.parametrize("factor", [1, 3])
def test_strips_convert_as_the_whole_picture(
    monkeypatch: pytest.MonkeyPatch, mode: str, factor: int
) -> None:
    img = _picture(mode, (301, 203))
    whole = to_rgb(img)
    expected = whole.reduce(factor) if factor > 1 else whole
    monkeypatch.setattr(imaging, "_STRIP_BYTES", 301 * 4 * 7)  # strips of a few rows
    stripped = reduced_rgb(img, factor)
    assert stripped.size == expected.size
    difference = np.abs(np.asarray(stripped, np.int16) - np.asarray(expected, np.int16))
    # Reducing a grey picture before turning it RGB rounds once instead of twice.
    assert difference.max() <= (1 if factor > 1 else 0)


def test_a_16_bit_strip_keeps_the_whole_pictures_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    # The top rows are dark, the bottom bright: a strip scaled on its own would stretch.
    ramp = np.repeat(np.linspace(0, 30000, 100, dtype=np.uint16)[:, None], 50, axis=1)
    img = Image.fromarray(ramp)
    monkeypatch.setattr(imaging, "_STRIP_BYTES", 50 * 4 * 10)
    top_row = np.asarray(reduced_rgb(img, 1))[0]
    assert top_row.max() == 0


def test_decoding_a_16_bit_png_holds_its_pixels_once(tmp_path: Path) -> None:
    # 48 MP of 16-bit grey: 92 MB decoded. Converting it whole took over five times that.
    path = tmp_path / "big.png"
    path.write_bytes(blank_png(8000, 6000, bit_depth=16))
    script = textwrap.dedent(
        f"""
        import resource
        from pathlib import Path
        from processing.photo import load_oriented_rgb
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        img = load_oriented_rgb(Path({str(path)!r}), 512)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(img.size[0], img.size[1], (after - before) * 1024)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    width, height, grown = (int(part) for part in done.stdout.split())
    assert max(width, height) >= 512
    decoded = 8000 * 6000 * 2
    assert grown < decoded * 1.5, f"peak grew by {grown // MB} MB for {decoded // MB} MB"
