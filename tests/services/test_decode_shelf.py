"""The shelf that hands an upload's decode to the worker: bounded, expiring, by content."""

from __future__ import annotations

import time

from PIL import Image

from services.background.handoff import DecodeShelf, pixel_bytes


def picture(width: int = 100, height: int = 80) -> Image.Image:
    return Image.new("RGB", (width, height), (10, 20, 30))


def test_what_is_offered_is_taken_once() -> None:
    shelf = DecodeShelf(capacity_bytes=10 * pixel_bytes(picture()))
    img = picture()
    assert shelf.offer("hash-a", img, side=512)
    assert shelf.take("hash-a", side=512) is img
    assert shelf.take("hash-a", side=512) is None
    assert shelf.held_bytes == 0


def test_an_offer_that_does_not_fit_is_dropped_and_the_first_ones_stay() -> None:
    shelf = DecodeShelf(capacity_bytes=2 * pixel_bytes(picture()))
    assert shelf.offer("a", picture(), 512)
    assert shelf.offer("b", picture(), 512)
    assert not shelf.offer("c", picture(), 512)
    assert len(shelf) == 2
    assert shelf.held_bytes == 2 * pixel_bytes(picture())
    assert shelf.take("c", 512) is None
    assert shelf.take("a", 512) is not None


def test_a_decode_too_small_for_the_worker_is_not_used() -> None:
    shelf = DecodeShelf(capacity_bytes=10 * pixel_bytes(picture()))
    shelf.offer("a", picture(), side=256)
    assert shelf.take("a", side=512) is None
    assert shelf.held_bytes == 0  # and it is gone


def test_an_entry_nobody_takes_expires() -> None:
    shelf = DecodeShelf(capacity_bytes=pixel_bytes(picture()), ttl_seconds=0.05)
    assert shelf.offer("rolled-back", picture(), 512)
    assert not shelf.offer("next", picture(), 512)  # full
    time.sleep(0.1)
    assert shelf.offer("next", picture(), 512)  # the stale one made room
    assert shelf.take("rolled-back", 512) is None


def test_an_empty_shelf_keeps_nothing() -> None:
    shelf = DecodeShelf(capacity_bytes=0)
    assert not shelf.offer("a", picture(), 512)
