"""The judge: sharpness, exposure and a combined quality score per photo, each in [0, 1].

Each photo is judged as a grey image 512 pixels on its longest side, so a 24 MP original and a
small copy of it score alike. Sharpness measures how much each pixel differs from the average of
its four neighbours (the variance of the Laplacian): crisp edges and fine texture give a large
value v, a blurred or missed-focus frame a small one; v / (v + 100) puts sharp photos around
0.65-0.95 and visibly blurred ones below 0.5. Exposure starts at 1 and loses up to 0.5 for blown
highlights (all of it once 5% of the frame is at 250 or brighter), up to 0.2 for crushed shadows
(5 or darker; all of it once half the frame is, since night and sky scenes are legitimately dark)
and up to 0.3 for the average brightness straying from mid-grey. The quality score is
0.7 x sharpness + 0.3 x exposure, because in a burst the first question is which frame is in focus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

# Longest side of the grey image every score is measured on.
QUALITY_SIDE = 512

# Laplacian variance at which sharpness is 0.5. Measured at QUALITY_SIDE on scikit-image's
# photos at their own size, 800 and 1000 px: sharp 179-1688 (the soft-focus cat lowest, scoring
# 0.64), after a Gaussian blur of radius 1: 16-503, radius 2: 4-97 (<= 0.49), radius 4: 2-13.
SHARPNESS_HALF_POINT = 100.0

BLOWN_LEVEL = 250.0
CRUSHED_LEVEL = 5.0
MID_GREY = 127.5
# Points exposure loses at worst for each fault, and the share of the frame at which it does.
BLOWN_WEIGHT, BLOWN_WORST = 0.5, 0.05
CRUSHED_WEIGHT, CRUSHED_WORST = 0.2, 0.5
MEAN_WEIGHT = 0.3

SHARPNESS_WEIGHT = 0.7
EXPOSURE_WEIGHT = 1.0 - SHARPNESS_WEIGHT


@dataclass(frozen=True, slots=True)
class QualityScores:
    sharpness: float  # in [0, 1], higher = sharper
    exposure: float  # in [0, 1], higher = better exposed
    quality_score: float  # in [0, 1], the combination; higher is better


def assess_quality(img: Image.Image) -> QualityScores:
    """Score an oriented 8-bit RGB image of any size (the one decoded for the thumbnail)."""
    grey = quality_grey(img)
    sharpness = sharpness_score(laplacian_variance(grey))
    exposure = exposure_score(grey)
    quality = SHARPNESS_WEIGHT * sharpness + EXPOSURE_WEIGHT * exposure
    return QualityScores(sharpness, exposure, _unit(quality))


def quality_grey(img: Image.Image) -> NDArray[np.float32]:
    """Luminance resized so its longest side is QUALITY_SIDE, as float32 in 0..255.

    Shrinking averages pixel areas (box filter). The rare smaller image is enlarged bicubically:
    the closest of Pillow's filters to what the same scene shot larger scores, without the
    overshoot of Lanczos or the softening of bilinear.
    """
    luminance = img.convert("L")
    width, height = luminance.size
    scale = QUALITY_SIDE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != luminance.size:
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
        luminance = luminance.resize(size, resample)
    return np.asarray(luminance, dtype=np.float32)


def laplacian_variance(grey: NDArray[np.float32]) -> float:
    """Variance of the 3x3 Laplacian [[0,1,0],[1,-4,1],[0,1,0]] over the image's interior."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    centre = grey[1:-1, 1:-1]
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * centre
    return float(laplacian.var(dtype=np.float64))


def sharpness_score(variance: float) -> float:
    """Saturating map of a Laplacian variance to [0, 1]: 0.5 at SHARPNESS_HALF_POINT."""
    if not variance > 0:  # also catches NaN
        return 0.0
    return _unit(variance / (variance + SHARPNESS_HALF_POINT))


def exposure_score(grey: NDArray[np.float32]) -> float:
    """1 minus penalties for blown highlights, crushed shadows and an off-centre mean."""
    if grey.size == 0:
        return 0.0
    blown = float(np.mean(grey >= BLOWN_LEVEL))
    crushed = float(np.mean(grey <= CRUSHED_LEVEL))
    off_centre = abs(float(grey.mean(dtype=np.float64)) - MID_GREY) / MID_GREY
    penalty = (
        BLOWN_WEIGHT * min(1.0, blown / BLOWN_WORST)
        + CRUSHED_WEIGHT * min(1.0, crushed / CRUSHED_WORST)
        + MEAN_WEIGHT * min(1.0, off_centre)
    )
    return _unit(1.0 - penalty)


def _unit(value: float) -> float:
    """Clamp to [0, 1], guarding against rounding just outside it."""
    return min(1.0, max(0.0, value))
