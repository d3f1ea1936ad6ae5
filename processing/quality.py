"""The judge: is the subject sharp, is the frame shaken, is it well exposed; each part in [0, 1].

Each photo is judged as a grey image 512 pixels on its longest side, so a 24 MP original and a
small copy of it score alike.

- Sharpness answers "is the subject in focus", not "is the frame sharp on average". The frame is
  cut into tiles of 64 px; each tile's sharpness is the variance of its Laplacian (how much each
  pixel differs from the average of its four neighbours) less what the frame's own noise
  contributes to it, so grain at high ISO or a busy out-of-focus texture does not pass for
  detail. The subject's value is the mean of the sharpest tenth of the tiles, tiles near the
  centre counting a little more: a portrait at f/1.8 with a sharp face on a soft background
  scores as sharp as a frame sharp edge to edge. When faces are found (OpenCV's frontal-face Haar
  cascade), the faces decide three quarters of it. v / (v + 250) maps a value v to [0, 1].
- Motion blur (a shaken frame) is told apart from defocus: shake smears every edge along one
  direction, so the frame's gradients all point the same way. Its value is how strongly they
  agree (0 = no preferred direction, 1 = all one way).
- Eyes: for each face, are its eyes open, closed, or unknown (too small, or no face after all),
  read by MediaPipe's face-mesh and iris models (processing/eyes.py).
- Exposure starts at 1 and loses up to 0.5 for blown highlights (all of it once 5% of the frame
  is at 250 or brighter), up to 0.2 for crushed shadows (5 or darker; all of it once half the
  frame is, since night and sky scenes are legitimately dark) and up to 0.3 for the average
  brightness straying from mid-grey.

The quality score is 0.7 x sharpness x (1 - 0.5 x shake beyond what a steady frame shows)
+ 0.3 x exposure, because in a burst the first question is which frame is in focus; it is then
multiplied by 1 - 0.5 x the share of the faces (of those read) whose eyes are closed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from processing.eyes import FaceEyes, read_eyes

# Bump when the score changes: images scored by an older version are re-scored at start-up.
QUALITY_VERSION = 7

# Longest side of the grey image every score is measured on.
QUALITY_SIDE = 512

# Laplacian variance at which the old whole-frame sharpness is 0.5 (kept for comparison:
# bench/keeper.py reports it beside the new score).
SHARPNESS_HALF_POINT = 100.0
# Noise-corrected Laplacian variance of the subject's tiles at which sharpness is 0.5. Tiles
# hold detail more densely than a whole frame, hence a higher point than the whole frame's 100.
SUBJECT_HALF_POINT = 250.0
# Same for a face: skin is smooth, so a sharp face has less Laplacian energy than foliage.
FACE_HALF_POINT = 60.0
TILE = 64
# Share of the tiles that make up "the subject" (at least two tiles).
SUBJECT_SHARE = 0.05
# Tiles at the corners count this much less than at the centre when choosing the subject: at
# 1.0 a corner counts nothing, a third point two thirds. Chosen with python -m
# bench.keeper_centre (bench/results/keeper_centre.txt): a busy sharp background around a soft
# subject won at 0.6 / 0.1 (14 of 27 centre-subject cases right); held out by source 17/27,
# chosen on both sources 21/27; shake and missed focus unchanged.
CENTRE_WEIGHT = 1.0
FACE_WEIGHT = 0.75
# Tiles this dark or bright on average are left out of the noise estimate.
NOISE_LEVELS = (16.0, 240.0)
# The estimate runs 10-20% low on real photos with added noise of known strength (the lowest
# tiles are picked, and noise is clipped near black and white), so a margin is subtracted too.
NOISE_MARGIN = 1.25
# ... and its error stays about this share of the noise it measures (10-20% before the margin):
# a tile whose detail, noise taken off, is below that share of the noise is counted as none.
# A soft high-ISO frame otherwise keeps a few grainy tiles of flat sky or water "sharper" than
# the in-focus frame's, which the side-by-side judge took for a compact subject (version 7).
NOISE_DETAIL_SHARE = 0.2

# Motion blur: agreement below MOTION_FLOOR is what most steady frames show (their content has
# some preferred direction: horizons, text lines); above it the score is docked.
MOTION_FLOOR = 0.35
MOTION_PENALTY = 0.5
# A frame counts as shaken (the reason "motion_blur") at or above this agreement.
MOTION_BLURRED = 0.5

BLOWN_LEVEL = 250.0
CRUSHED_LEVEL = 5.0
MID_GREY = 127.5
# Points exposure loses at worst for each fault, and the share of the frame at which it does.
BLOWN_WEIGHT, BLOWN_WORST = 0.5, 0.05
CRUSHED_WEIGHT, CRUSHED_WORST = 0.2, 0.5
MEAN_WEIGHT = 0.3

SHARPNESS_WEIGHT = 0.7
EXPOSURE_WEIGHT = 1.0 - SHARPNESS_WEIGHT
# A frame whose faces all have their eyes closed loses this share of its score: a blink
# loses to the same frame with open eyes unless that one is far worse otherwise.
EYES_CLOSED_PENALTY = 0.5

# The eyes' region: the box around both eyes' corners, widened by this share of its width on
# each side, and this share of its width above and below the corners' line (lids and lashes).
EYE_MARGIN_X, EYE_MARGIN_Y = 0.1, 0.12
# Noise-corrected Laplacian variance of the eyes' region at which eye sharpness is 0.5: lashes,
# lids and the iris's rim hold more detail than skin (FACE_HALF_POINT); measured in
# bench/keeper.py's eye table on real faces.
EYE_HALF_POINT = 120.0

# Faces are searched on a copy this size: Haar cascades cost grows with the area searched, and
# a face smaller than FACE_MIN_SIDE / FACE_SIDE of the frame is not what a culler decides by.
FACE_SIDE = 320
FACE_MIN_SIDE = 24
# Each size searched is this much larger than the one before.
FACE_SCALE_STEP = 1.2


@dataclass(frozen=True, slots=True)
class QualityScores:
    sharpness: float  # in [0, 1]: is the subject (or the faces) in focus
    exposure: float  # in [0, 1], higher = better exposed
    quality_score: float  # in [0, 1], the combination; higher is better
    motion_blur: float = 0.0  # in [0, 1]: how strongly the frame is smeared in one direction
    brightness: float = 0.5  # mean luminance in [0, 1]: tells over- from under-exposure
    face_count: int = 0
    face_sharpness: float | None = None  # in [0, 1], size-weighted over the faces; None: none
    # Per face, in the order found: "open", "closed" or "unknown", comma-separated; None: none.
    eyes: str | None = None
    # Per face, in the same order: its sharpness in [0, 1] to two decimals ("unknown" for a
    # face too small to measure), comma-separated; None: none.
    face_sharpnesses: str | None = None
    # The eyes' own focus in [0, 1], size-weighted over the faces whose eyes were placed.
    eye_sharpness: float | None = None
    # Per face, in the order of `eyes`: its box as fractions of the upright frame (x, y,
    # width, height), eyes, sharpness and eye_sharpness (FaceRead.as_dict); None: no face.
    faces: list[dict[str, Any]] | None = None
    # Each tile's noise-corrected Laplacian variance (rows x columns, one decimal): frames of
    # one group are compared tile by tile (processing/group_focus.py).
    focus_tiles: list[list[float]] | None = None

    def columns(self) -> dict[str, Any]:
        """The values stored on the image row, with the version that made them."""
        return {**asdict(self), "quality_version": QUALITY_VERSION}


def assess_quality(img: Image.Image) -> QualityScores:
    """Score an oriented 8-bit RGB image of any size (the one decoded for the thumbnail)."""
    grey = quality_grey(img)
    # The frame's noise, measured once: the tiles, the faces and the eyes are all corrected by it.
    noise = noise_variance(grey)
    tiles = tile_sharpness(grey, noise)
    region = subject_region_value(tiles)
    faces = detect_faces(grey)
    each_face = face_sharpness_each(grey, faces, noise)
    face_value = faces_sharpness(each_face, faces)
    read = read_eyes(img, faces, grey.shape[1] / img.width) if faces else []
    eyes = [face.state for face in read]
    each_eye = eye_sharpness_each(grey, read, noise)
    sharpness = subject_sharpness(sharpness_score(region, SUBJECT_HALF_POINT), face_value)
    motion = motion_blur_score(grey)
    exposure = exposure_score(grey)
    quality = combined_score(sharpness, motion, exposure, eyes)
    brightness = float(grey.mean(dtype=np.float64)) / 255.0 if grey.size else 0.0
    return QualityScores(
        sharpness=_unit(sharpness),
        exposure=exposure,
        quality_score=_unit(quality),
        motion_blur=_unit(motion),
        brightness=_unit(brightness),
        face_count=len(faces),
        face_sharpness=face_value,
        eyes=",".join(eyes) if eyes else None,
        face_sharpnesses=",".join(
            "unknown" if value is None else f"{value:.2f}" for value in each_face
        )
        or None,
        eye_sharpness=faces_sharpness(each_eye, faces),
        faces=[
            face_entry(grey.shape, box, read[i].state, each_face[i], each_eye[i])
            for i, box in enumerate(faces)
        ]
        or None,
        focus_tiles=[[round(float(v), 1) for v in row] for row in tiles],
    )


def steadiness(motion: float) -> float:
    """What is left of sharpness after shake: 1 up to a steady frame's MOTION_FLOOR, then down
    to 1 - MOTION_PENALTY for a frame smeared all one way."""
    return 1.0 - MOTION_PENALTY * max(0.0, motion - MOTION_FLOOR) / (1.0 - MOTION_FLOOR)


def subject_sharpness(region: float, face: float | None) -> float:
    """The frame's sharpness from its subject tiles' and (when found) its faces'."""
    return region if face is None else FACE_WEIGHT * face + (1 - FACE_WEIGHT) * region


def combined_score(
    sharpness: float, motion: float, exposure: float, eyes: Sequence[str] | str | None
) -> float:
    """The quality score from its parts (the module's docstring says how)."""
    quality = SHARPNESS_WEIGHT * sharpness * steadiness(motion) + EXPOSURE_WEIGHT * exposure
    return _unit(quality * (1.0 - EYES_CLOSED_PENALTY * closed_share(eyes)))


def face_entry(
    shape: tuple[int, ...],
    box: tuple[int, int, int, int],
    eyes: str,
    sharpness: float | None,
    eye_sharpness: float | None,
) -> dict[str, Any]:
    """One face as the API gives it: its box as fractions of the upright frame (so a client
    crops the original, a preview or the thumbnail alike), its eyes and both sharpnesses."""
    height, width = shape[0], shape[1]
    x, y, w, h = box
    return {
        "x": round(x / width, 4),
        "y": round(y / height, 4),
        "width": round(w / width, 4),
        "height": round(h / height, 4),
        "eyes": eyes,
        "sharpness": None if sharpness is None else round(sharpness, 3),
        "eye_sharpness": None if eye_sharpness is None else round(eye_sharpness, 3),
    }


def eye_sharpness_each(
    grey: NDArray[np.float32], read: Sequence[FaceEyes], noise: float
) -> list[float | None]:
    """Each face's eye sharpness in [0, 1]: the region around both eyes (from the mesh's eye
    corners), less `noise` (noise_variance); None where the eyes were not placed or the region
    is too small."""
    if not read:
        return []
    values: list[float | None] = []
    for face in read:
        if face.eyes_box is None:
            values.append(None)
            continue
        x0, y0, x1, y1 = face.eyes_box
        span = x1 - x0
        middle = (y0 + y1) / 2
        top = max(0, round(min(y0, middle - EYE_MARGIN_Y * span)))
        bottom = round(max(y1, middle + EYE_MARGIN_Y * span))
        left = max(0, round(x0 - EYE_MARGIN_X * span))
        region = grey[top:bottom, left : round(x1 + EYE_MARGIN_X * span)]
        if region.shape[0] < 3 or region.shape[1] < 3:
            values.append(None)
            continue
        value = max(0.0, laplacian_variance(region) - noise)
        values.append(sharpness_score(value, EYE_HALF_POINT))
    return values


def closed_share(eyes: Sequence[str] | str | None) -> float:
    """The share of the faces whose eyes were read that have them closed (0 when none read)."""
    states = eyes.split(",") if isinstance(eyes, str) else (eyes or [])
    read = [state for state in states if state != "unknown"]
    return sum(state == "closed" for state in read) / len(read) if read else 0.0


def legacy_quality_score(img: Image.Image) -> float:
    """The score before version 2 (whole-frame Laplacian variance), for the benchmark."""
    grey = quality_grey(img)
    sharpness = sharpness_score(laplacian_variance(grey), SHARPNESS_HALF_POINT)
    return _unit(SHARPNESS_WEIGHT * sharpness + EXPOSURE_WEIGHT * exposure_score(grey))


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
    return float(_laplacian(grey).var(dtype=np.float64))


def _laplacian(grey: NDArray[np.float32]) -> NDArray[np.float32]:
    centre = grey[1:-1, 1:-1]
    return grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * centre


def _tile_means(values: NDArray[np.float32], tile: int) -> NDArray[np.float64]:
    """Mean of `values` over each whole tile x tile block (a ragged edge is left out)."""
    rows, cols = values.shape[0] // tile, values.shape[1] // tile
    if rows == 0 or cols == 0:
        return (
            np.array([[float(values.mean(dtype=np.float64))]]) if values.size else np.zeros((1, 1))
        )
    blocks = values[: rows * tile, : cols * tile].reshape(rows, tile, cols, tile)
    means: NDArray[np.float64] = blocks.mean(axis=(1, 3), dtype=np.float64)
    return means


def noise_variance(grey: NDArray[np.float32]) -> float:
    """The Laplacian variance that the frame's noise alone would give.

    Immerkaer's estimate of the noise's standard deviation, taken in the flattest tenth of the
    tiles (where there is no detail to mistake for noise); white noise of deviation s gives the
    4-neighbour Laplacian a variance of 20 s^2.
    """
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    response = np.abs(cv2.filter2D(grey, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT))
    per_tile = _tile_means(response, TILE // 2).ravel()
    # Clipped white sky or black shadow hides the noise the rest of the frame carries.
    level = _tile_means(grey, TILE // 2).ravel()
    unclipped = per_tile[(level > NOISE_LEVELS[0]) & (level < NOISE_LEVELS[1])]
    flattest = float(np.percentile(unclipped if unclipped.size else per_tile, 10))
    sigma = float(np.sqrt(np.pi / 2)) * flattest / 6.0
    return NOISE_MARGIN * 20.0 * sigma * sigma


def tile_sharpness(grey: NDArray[np.float32], noise: float) -> NDArray[np.float64]:
    """Laplacian variance of each TILE x TILE tile (rows x columns), less `noise`
    (noise_variance)."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return np.zeros((1, 1))
    laplacian = _laplacian(grey)
    energy = _tile_means(laplacian * laplacian, TILE)
    detail = energy - noise
    # What stays within the noise estimate's own error of zero is grain, not detail.
    return np.where(detail > NOISE_DETAIL_SHARE * noise, detail, 0.0)


def subject_region_value(tiles: NDArray[np.float64]) -> float:
    """The sharpest SUBJECT_SHARE of the tiles, those near the centre counting a little more."""
    weighted = (tiles * (1.0 - CENTRE_WEIGHT * tile_distance(tiles.shape))).ravel()
    count = max(2, round(SUBJECT_SHARE * weighted.size))
    return float(np.sort(weighted)[-count:].mean())


def tile_distance(shape: tuple[int, ...]) -> NDArray[np.float64]:
    """Each tile's distance from the frame's centre: 0 there, 1 at a corner."""
    rows, cols = shape[0], shape[1]
    y = (np.arange(rows) + 0.5) / rows - 0.5
    x = (np.arange(cols) + 0.5) / cols - 0.5
    distance: NDArray[np.float64] = np.sqrt(y[:, None] ** 2 + x[None, :] ** 2) / np.sqrt(0.5)
    return distance


def sharpness_score(variance: float, half_point: float = SUBJECT_HALF_POINT) -> float:
    """Saturating map of a Laplacian variance to [0, 1]: 0.5 at `half_point`."""
    if not variance > 0:  # also catches NaN
        return 0.0
    return _unit(variance / (variance + half_point))


def motion_blur_score(grey: NDArray[np.float32]) -> float:
    """How strongly the frame's gradients agree on one orientation (0 = none, 1 = all).

    The coherence of the frame's structure tensor (summed products of the x and y gradients):
    shake smears every edge along the direction the camera moved, leaving gradients across it
    only; defocus blurs every direction alike and leaves ordinary content's mix of
    orientations. Content with one strong orientation (text lines, dunes, bricks) also scores
    high, so the score is best compared between frames of one burst.
    """
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    jxx = float(np.mean(gx * gx, dtype=np.float64))
    jyy = float(np.mean(gy * gy, dtype=np.float64))
    jxy = float(np.mean(gx * gy, dtype=np.float64))
    if jxx + jyy <= 1e-9:
        return 0.0
    return _unit(float(np.hypot(jxx - jyy, 2 * jxy)) / (jxx + jyy))


# Cascade classifiers are not safe to share between threads; one per thread, loaded once.
_local = threading.local()


def _face_cascade() -> cv2.CascadeClassifier:
    cascade: cv2.CascadeClassifier | None = getattr(_local, "faces", None)
    if cascade is None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml"  # type: ignore[attr-defined]
        # The worker already runs images side by side (and torch has its own threads); OpenCV's
        # pool on top would only oversubscribe the cores for these 512-px images.
        cv2.setNumThreads(1)
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise RuntimeError(f"OpenCV's face cascade could not be loaded from {path}")
        _local.faces = cascade
    return cascade


def detect_faces(
    grey: NDArray[np.float32],
    side: int = FACE_SIDE,
    step: float = FACE_SCALE_STEP,
    smallest: int = FACE_MIN_SIDE,
) -> list[tuple[int, int, int, int]]:
    """Frontal faces as (x, y, width, height) in `grey`'s pixels, searched on a copy `side`
    pixels long, at sizes from `smallest` up by `step` (bench.judge_cost tries others)."""
    height, width = grey.shape
    if min(height, width) < smallest:
        return []
    scale = min(1.0, side / max(height, width))
    small: NDArray[Any] = grey.astype(np.uint8)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    found = _face_cascade().detectMultiScale(
        small, scaleFactor=step, minNeighbors=4, minSize=(smallest, smallest)
    )
    return [
        (round(x / scale), round(y / scale), round(w / scale), round(h / scale))
        for x, y, w, h in (found if len(found) else [])
    ]


def face_sharpness_each(
    grey: NDArray[np.float32], faces: list[tuple[int, int, int, int]], noise: float
) -> list[float | None]:
    """Each face's sharpness in [0, 1] (its inner part, less `noise`: noise_variance); None
    for a face too small to measure."""
    if not faces:
        return []
    values: list[float | None] = []
    for x, y, w, h in faces:
        # The inner part: eyes, nose and mouth, not the hair or background at the box's edge.
        inner = grey[y + h // 6 : y + h - h // 6, x + w // 6 : x + w - w // 6]
        if inner.shape[0] < 3 or inner.shape[1] < 3:
            values.append(None)
            continue
        value = max(0.0, laplacian_variance(inner) - noise)
        values.append(sharpness_score(value, FACE_HALF_POINT))
    return values


def faces_sharpness(
    each_face: Sequence[float | None], faces: list[tuple[int, int, int, int]]
) -> float | None:
    """The faces' sharpness (face_sharpness_each), weighted by their size."""
    total = weight = 0.0
    for value, (_, _, w, h) in zip(each_face, faces, strict=True):
        if value is not None:
            total += w * h * value
            weight += w * h
    return total / weight if weight else None


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


class Judged(Protocol):
    """What ranking reads of a judged image (an `Image` row)."""

    @property
    def quality_score(self) -> float | None: ...
    @property
    def sharpness(self) -> float | None: ...
    @property
    def exposure(self) -> float | None: ...
    @property
    def motion_blur(self) -> float | None: ...
    @property
    def brightness(self) -> float | None: ...
    @property
    def face_sharpness(self) -> float | None: ...
    @property
    def eye_sharpness(self) -> float | None: ...
    @property
    def eyes(self) -> str | None: ...


# Reasons an image ranks below its group's keeper, by the part it loses most on.
REASONS = (
    "eyes_closed",
    "blurred",
    "face_blurred",
    "motion_blur",
    "overexposed",
    "underexposed",
    "lower_score",
    "not_scored",
)
# A part counts as the reason when it costs the image at least this much score against the
# keeper; below that the two frames are a close call ("lower_score").
REASON_MARGIN = 0.02
# Shake is named the reason when the image's gradients agree this much more than the keeper's
# and than steady frames' (MOTION_FLOOR).
MOTION_MARGIN = 0.1
# Exposure is named first when the image's mean brightness is this far from the keeper's.
BRIGHTNESS_MARGIN = 0.1


def rank_reason(image: Judged, keeper: Judged) -> str:
    """Why `image` ranks below `keeper`: the part of the score it loses most on."""
    if image.quality_score is None or image.sharpness is None or image.exposure is None:
        return "not_scored"
    # Closed eyes are named first: a culler's first look at a portrait, and no sharpness or
    # exposure makes up for them.
    if closed_share(image.eyes) > closed_share(keeper.eyes):
        return "eyes_closed"
    if keeper.sharpness is None or keeper.exposure is None:
        return "lower_score"
    sharpness_loss = SHARPNESS_WEIGHT * (keeper.sharpness - image.sharpness)
    exposure_loss = EXPOSURE_WEIGHT * (keeper.exposure - image.exposure)
    # Shake is only named beyond what steady frames show (MOTION_FLOOR), where it costs score.
    motion_gain = (image.motion_blur or 0.0) - max(keeper.motion_blur or 0.0, MOTION_FLOOR)
    brightness_shift = (image.brightness or 0.0) - (keeper.brightness or 0.0)
    # A much darker or brighter frame also loses contrast, and with it Laplacian energy: its
    # lower sharpness is the exposure's doing.
    if exposure_loss >= REASON_MARGIN and abs(brightness_shift) >= BRIGHTNESS_MARGIN:
        return "overexposed" if brightness_shift > 0 else "underexposed"
    if sharpness_loss >= max(exposure_loss, REASON_MARGIN):
        if motion_gain >= MOTION_MARGIN:
            return "motion_blur"
        if image.face_sharpness is not None and keeper.face_sharpness is not None:
            if keeper.face_sharpness > image.face_sharpness:
                return "face_blurred"
        return "blurred"
    if exposure_loss >= REASON_MARGIN:
        return "overexposed" if brightness_shift > 0 else "underexposed"
    if motion_gain >= MOTION_MARGIN:
        return "motion_blur"
    return "lower_score"


def _unit(value: float) -> float:
    """Clamp to [0, 1], guarding against rounding just outside it."""
    return min(1.0, max(0.0, value))
