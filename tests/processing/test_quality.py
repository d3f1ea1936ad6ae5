"""The judge on real photos (scikit-image's samples) and their blurred and re-exposed copies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from processing.photo import load_oriented_rgb
from processing.quality import (
    MOTION_BLURRED,
    QUALITY_SIDE,
    QUALITY_VERSION,
    REASONS,
    QualityScores,
    assess_quality,
    legacy_quality_score,
    quality_grey,
    rank_reason,
)
from tests.factories import (
    ASTRONAUT_HEAD,
    REAL_PHOTOS,
    burst,
    real_photo,
    shaken,
    shallow_focus,
    with_noise,
)

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
    # Shake beyond what steady frames show (0.35) docks up to half the sharpness part.
    steady = 1 - 0.5 * max(0.0, scores.motion_blur - 0.35) / 0.65
    expected = 0.7 * scores.sharpness * steady + 0.3 * scores.exposure
    assert scores.quality_score == pytest.approx(expected)
    for part in (scores.motion_blur, scores.brightness):
        assert 0.0 <= part <= 1.0
    assert (scores.face_count == 0) == (scores.face_sharpness is None)
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


# --- Version 2: the subject, shake, noise, faces, and the reason a frame lost --------------


def test_a_face_is_found_and_judged() -> None:
    sharp = checked(assess_quality(photo("astronaut.png")))
    soft_face = checked(
        assess_quality(shallow_focus(photo("astronaut.png"), ASTRONAUT_HEAD, False))
    )
    assert sharp.face_count == soft_face.face_count == 1
    assert sharp.face_sharpness is not None
    assert soft_face.face_sharpness is not None
    assert sharp.face_sharpness - soft_face.face_sharpness > 0.3
    # One face: its own value is the weighted mean, to two decimals.
    assert sharp.face_sharpnesses == f"{sharp.face_sharpness:.2f}"
    assert soft_face.face_sharpnesses == f"{soft_face.face_sharpness:.2f}"
    assert checked(assess_quality(photo("coffee.png"))).face_count == 0


def test_sharp_face_on_soft_background_beats_sharp_background() -> None:
    portrait = shallow_focus(photo("astronaut.png"), ASTRONAUT_HEAD, inside=True)
    missed = shallow_focus(photo("astronaut.png"), ASTRONAUT_HEAD, inside=False)
    assert checked(assess_quality(portrait)).quality_score > assess_quality(missed).quality_score
    # The whole-frame score this replaced picked the wrong frame.
    assert legacy_quality_score(portrait) < legacy_quality_score(missed)


@pytest.mark.parametrize("name", MID_TONED)
def test_shake_is_told_apart_from_defocus(name: str) -> None:
    steady = checked(assess_quality(photo(name)))
    defocus = checked(assess_quality(photo(name).filter(ImageFilter.GaussianBlur(2))))
    shakes = [checked(assess_quality(shaken(photo(name), 9, angle))) for angle in (0, 45, 90, 135)]
    # A shake along the content's own main orientation hides in it (see the README), so the
    # rise is asked of the four directions on average, and defocus must not show one.
    rise = sum(s.motion_blur for s in shakes) / len(shakes) - steady.motion_blur
    assert rise > 0.15
    assert abs(defocus.motion_blur - steady.motion_blur) < 0.1
    assert max(s.quality_score for s in shakes) < steady.quality_score


def test_a_real_shaken_photo_shows_motion_blur() -> None:
    # scikit-image's clock: photographed while the camera moved sideways.
    clock = checked(assess_quality(Image.fromarray(skimage_clock()).convert("RGB")))
    assert clock.motion_blur > max(scores_of(name).motion_blur for name in MID_TONED)
    assert clock.motion_blur >= MOTION_BLURRED


def skimage_clock() -> np.ndarray:
    import skimage.data

    return skimage.data.clock()


@pytest.mark.parametrize("name", REAL_PHOTOS)
def test_noise_does_not_pass_for_detail(name: str) -> None:
    in_focus = with_noise(photo(name), 3, seed=1)
    missed_at_high_iso = with_noise(photo(name).filter(ImageFilter.GaussianBlur(2)), 10, seed=2)
    assert assess_quality(in_focus).sharpness > assess_quality(missed_at_high_iso).sharpness


@dataclass
class Judgement:
    quality_score: float | None = 0.5
    sharpness: float | None = 0.8
    exposure: float | None = 0.9
    motion_blur: float | None = 0.2
    brightness: float | None = 0.5
    face_sharpness: float | None = None
    eyes: str | None = None


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (Judgement(sharpness=0.4), "blurred"),
        (Judgement(sharpness=0.4, motion_blur=0.6), "motion_blur"),
        # More directional than the keeper, but within what steady frames show: not shake.
        (Judgement(sharpness=0.4, motion_blur=0.32), "blurred"),
        (Judgement(sharpness=0.4, face_sharpness=0.2), "face_blurred"),
        (Judgement(sharpness=0.4, face_sharpness=0.2, eyes="open,closed"), "eyes_closed"),
        (Judgement(sharpness=0.4, face_sharpness=0.2, eyes="open,unknown"), "face_blurred"),
        (Judgement(exposure=0.5, brightness=0.8), "overexposed"),
        (Judgement(exposure=0.5, brightness=0.2), "underexposed"),
        (Judgement(sharpness=0.79), "lower_score"),
        (Judgement(quality_score=None, sharpness=None, exposure=None), "not_scored"),
    ],
)
def test_rank_reason_names_the_part_lost_most(image: Judgement, reason: str) -> None:
    keeper = Judgement(face_sharpness=0.9 if image.face_sharpness is not None else None)
    if image.eyes is not None:
        keeper.eyes = "open,open"
    assert reason in REASONS
    assert rank_reason(image, keeper) == reason


def test_scores_record_the_version() -> None:
    columns = assess_quality(photo("coffee.png")).columns()
    assert columns["quality_version"] == QUALITY_VERSION
    assert set(columns) >= {"quality_score", "sharpness", "exposure", "motion_blur", "face_count"}
