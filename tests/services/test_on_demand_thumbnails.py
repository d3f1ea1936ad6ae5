"""On-demand thumbnails (issue 10, item 6): one decode per image however many requests wait
for it, a small bound on decodes at a time, and a decode that never holds more than one
full-size copy of the pixels."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import ExifTags

from tests.factories import build_exif, encode, gradient_image, png_bytes
from utils.file_handling import SingleFlight, decode_for_thumbnail


def test_calls_with_one_key_share_one_run() -> None:
    flight = SingleFlight(limit=2)
    runs = 0
    entered, release = threading.Event(), threading.Event()

    def work() -> None:
        nonlocal runs
        runs += 1
        entered.set()
        release.wait(10)

    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(flight.run, "image-1", work)
        assert entered.wait(10)
        waiters = [pool.submit(flight.run, "image-1", work) for _ in range(5)]
        time.sleep(0.2)  # let the waiters reach the shared run (not a timing assertion)
        release.set()
        for future in [first, *waiters]:
            future.result(10)
    assert runs == 1


def test_waiters_get_the_runs_error_and_the_next_call_runs_again() -> None:
    flight = SingleFlight(limit=1)

    def fail() -> None:
        raise ValueError("broken picture")

    with pytest.raises(ValueError, match="broken picture"):
        flight.run("k", fail)
    calls: list[str] = []
    flight.run("k", lambda: calls.append("ran"))
    assert calls == ["ran"]


def test_runs_with_different_keys_are_bounded() -> None:
    flight = SingleFlight(limit=2)
    lock = threading.Lock()
    running = peak = 0
    gate = threading.Barrier(2, timeout=10)

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            gate.wait()  # two at once are allowed: this meets a partner
        except threading.BrokenBarrierError:
            pass
        time.sleep(0.05)
        with lock:
            running -= 1

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(flight.run, f"image-{n}", work) for n in range(6)]:
            future.result(30)
    assert peak == 2


def test_a_large_png_is_reduced_while_decoding(tmp_path: Path) -> None:
    source = tmp_path / "big.png"
    source.write_bytes(png_bytes((2600, 1950), seed=1))
    img = decode_for_thumbnail(source, 512)
    assert img.mode == "RGB"
    assert 512 <= max(img.size) < 2 * 512 * 2
    assert img.size[0] / img.size[1] == pytest.approx(4 / 3, rel=0.01)


def test_a_reduced_decode_is_still_upright(tmp_path: Path) -> None:
    source = tmp_path / "turned.jpg"
    exif = build_exif(base={ExifTags.Base.Orientation: 6})
    source.write_bytes(encode(gradient_image((3000, 2000), seed=2), "JPEG", exif))
    img = decode_for_thumbnail(source, 256)
    assert img.size[0] < img.size[1]  # stored landscape, shown portrait
    assert 256 <= max(img.size) <= 4 * 256
