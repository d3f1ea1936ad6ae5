"""The judge on real photos (scikit-image's samples) and their blurred and re-exposed copies."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from processing.imaging import load_oriented_rgb
from processing.quality import QUALITY_SIDE, QualityScores, assess_quality, quality_grey
from tests.factories import REAL_PHOTOS, burst, real_photo

# Correctly exposed, mid-toned photos. The Hubble field is a legitimately dark scene: brightening
# it also raises its contrast, and with it the Laplacian, so only its exposure part is compared.
MID_TONED = tuple(name for name in REAL_PHOTOS if name != "hubble_deep_field.jpg")
# +1.5 EV as the brief models it: pixel values x2.8, clipped at white.
OVER, UNDER = 2.8, 1 / 2.8


@cache
def photo(name: str) -> Image.Image:
    return real_photo(name)


@cache
def scores_of(name: str, blur: float = 0.0, exposure: float = 1.0) -> QualityScores:
    img = photo(name)
    if exposure != 1.0:
        scaled = np.asarray(img, dtype=np.float32) * exposure
        img = Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8), mode="RGB")
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return checked(assess_quality(img))


def checked(scores: QualityScores) -> QualityScores:
    for value in (scores.sharpness, scores.exposure, scores.quality_score):
        assert math.isfinite(value)
        assert 0.0 <= value <= 1.0
    assert scores.quality_score == pytest.approx(0.7 * scores.sharpness + 0.3 * scores.exposure)
    return scores


def resized(img: Image.Image, longest_side: int) -> Image.Image:
    scale = longest_side / max(img.size)
    size = (round(img.width * scale), round(img.height * scale))
    return img.resize(size, Image.Resampling.LANCZOS)


@pytest.mark.parametrize("name", REAL_PHOTOS)
def test_more_blur_scores_lower(name: str) -> None:
    by_blur = [scores_of(name, blur) for blur in (0, 1, 2, 4)]
    sharpness = [s.sharpness for s in by_blur]
    quality = [s.quality_score for s in by_blur]
    assert sharpness == sorted(sharpness, reverse=True)
    assert len(set(sharpness)) == len(sharpness)
    assert quality == sorted(quality, reverse=True)
    assert len(set(quality)) == len(quality)


@pytest.mark.parametrize("name", REAL_PHOTOS)
def test_calibration_separates_sharp_from_blurred(name: str) -> None:
    assert 0.6 <= scores_of(name).sharpness <= 0.95
    assert scores_of(name, blur=2).sharpness < 0.5
    assert scores_of(name, blur=4).sharpness < 0.15


@pytest.mark.parametrize("name", REAL_PHOTOS)
@pytest.mark.parametrize("factor", [OVER, UNDER], ids=["over", "under"])
def test_wrong_exposure_scores_lower_exposure(name: str, factor: float) -> None:
    assert scores_of(name).exposure - scores_of(name, exposure=factor).exposure > 0.05


@pytest.mark.parametrize("name", MID_TONED)
def test_over_exposed_copy_scores_clearly_lower(name: str) -> None:
    correct, over = scores_of(name), scores_of(name, exposure=OVER)
    assert correct.exposure - over.exposure > 0.3
    assert over.quality_score < correct.quality_score


@pytest.mark.parametrize("name", REAL_PHOTOS)
def test_under_exposed_copy_scores_lower(name: str) -> None:
    assert scores_of(name, exposure=UNDER).quality_score < scores_of(name).quality_score


def test_dark_scene_is_not_crushed_for_its_mean() -> None:
    # Mean brightness 19 of 255 and 4% black pixels: a night sky, correctly exposed.
    assert scores_of("hubble_deep_field.jpg").exposure > 0.7


@pytest.mark.parametrize("name", REAL_PHOTOS)
def test_sharpness_compares_across_resolutions(name: str) -> None:
    large = resized(photo(name), 1600)
    small = resized(large, 800)
    difference = assess_quality(small).sharpness - assess_quality(large).sharpness
    assert abs(difference) < 0.1


@pytest.mark.parametrize("size", [(1600, 1067), (1067, 1600), (600, 400), (320, 240), (1, 1)])
def test_grey_image_is_resized_to_quality_side(size: tuple[int, int]) -> None:
    grey = quality_grey(Image.new("RGB", size, (90, 120, 200)))
    assert grey.dtype == np.float32
    assert max(grey.shape) == QUALITY_SIDE


@pytest.mark.parametrize(("name", "seed"), [("astronaut.png", 0), ("coffee.png", 1)])
def test_burst_keeper_is_a_sharp_frame(tmp_path: Path, name: str, seed: int) -> None:
    sharp = burst(photo(name), 3, seed, blur=(0.0, 0.3))
    blurred = burst(photo(name), 3, seed + 100, blur=(1.5, 3.0))
    frames = [frame for pair in zip(blurred, sharp, strict=True) for frame in pair]
    quality = []
    for index, data in enumerate(frames):
        path = tmp_path / f"frame-{index}.jpg"
        path.write_bytes(data)
        quality.append(checked(assess_quality(load_oriented_rgb(path, 512))).quality_score)
    sharp_quality, blurred_quality = quality[1::2], quality[0::2]
    assert min(sharp_quality) > max(blurred_quality)
    assert int(np.argmax(quality)) % 2 == 1


@pytest.mark.parametrize(
    "img",
    [
        Image.new("RGB", (1, 1), (128, 128, 128)),
        Image.new("RGB", (2, 1), (255, 0, 0)),
        Image.new("RGB", (1, 600), (10, 200, 30)),
        Image.new("RGB", (600, 2), (10, 200, 30)),
        Image.new("RGB", (300, 200), (128, 128, 128)),
        Image.new("RGB", (300, 200), (0, 0, 0)),
        Image.new("RGB", (300, 200), (255, 255, 255)),
        Image.new("L", (40, 30), 77),
        Image.new("RGBA", (40, 30), (0, 0, 0, 0)),
    ],
    ids=["1x1", "2x1", "1x600", "600x2", "grey", "black", "white", "L", "transparent"],
)
def test_degenerate_images_give_finite_scores(img: Image.Image) -> None:
    scores = checked(assess_quality(img))
    assert scores.sharpness == 0.0


def test_flat_extremes_score_low() -> None:
    black = checked(assess_quality(Image.new("RGB", (300, 200), (0, 0, 0))))
    white = checked(assess_quality(Image.new("RGB", (300, 200), (255, 255, 255))))
    grey = checked(assess_quality(Image.new("RGB", (300, 200), (128, 128, 128))))
    assert white.exposure == pytest.approx(0.2)
    assert black.exposure == pytest.approx(0.5)
    assert grey.exposure == pytest.approx(1.0, abs=0.01)
    assert max(black.quality_score, white.quality_score, grey.quality_score) <= 0.3


def test_scores_are_deterministic() -> None:
    img = photo("rocket.jpg")
    assert assess_quality(img) == assess_quality(img.copy()) == assess_quality(img)
