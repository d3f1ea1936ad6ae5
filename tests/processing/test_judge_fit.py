"""The fitted judge's maths on real photos: the default weights are today's judge, and a fit
is pulled toward them."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from processing.judge_fit import (
    DEFAULT_WEIGHTS,
    Choice,
    fit_weights,
    judge_order,
    weight_vector,
)
from processing.quality import assess_quality
from tests.factories import REAL_PHOTOS, burst, real_photo


def _frames(name: str, seed: int) -> list:
    shots = burst(real_photo(name), frames=4, seed=seed, blur=(0.0, 2.5))
    return [assess_quality(Image.open(io.BytesIO(shot)).convert("RGB")) for shot in shots]


def test_the_default_weights_order_frames_as_the_default_judge_does() -> None:
    default = weight_vector(DEFAULT_WEIGHTS)
    for seed, name in enumerate(REAL_PHOTOS):
        frames = _frames(name, seed)
        assert judge_order(frames, default) == judge_order(frames, None), name


def test_no_choice_leaves_the_default_and_one_choice_moves_it_a_little() -> None:
    default = weight_vector(DEFAULT_WEIGHTS)
    assert np.allclose(fit_weights([], default), default)
    frames = _frames("chelsea.png", 7)
    worst = judge_order(frames, None)[-1]
    one = fit_weights([Choice(frames, frozenset([worst]), frozenset())], default)
    assert not np.allclose(one, default)
    assert float(np.abs(one - default).max()) < 0.5
