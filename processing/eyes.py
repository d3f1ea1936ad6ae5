"""Eyes open or closed, per face, with MediaPipe's face-mesh and iris models run by OpenCV.

For each face the Haar cascade found, MediaPipe's face landmark model (468 points) places the
eye corners on a 192-px crop of the face, which also gives the head's roll; then MediaPipe's iris
landmark model reads each eye on a 64-px crop levelled by that roll and outlines its lids. An
eye's openness is the lid outline's height over its width: about 0.4 for an open eye, 0.15 for
a closed one (bench/keeper.py measures both on real faces). A face whose eyes average below
EYES_CLOSED_BELOW counts as "closed"; one the mesh model does not take for a face (a false
detection), or whose eyes are too small to read, is "unknown".

Both models are Apache-2.0, from the mediapipe 0.10.21 wheel (processing/models/README.md);
OpenCV's own TFLite reader runs them, so nothing beyond opencv-python-headless is needed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

EyesState = Literal["open", "closed", "unknown"]

MODELS = Path(__file__).parent / "models"
MESH_SIDE = 192
EYE_SIDE = 64
# The mesh model was trained on a face box enlarged by half (MediaPipe's face ROI).
FACE_MARGIN = 1.5
# The eye crop is this many eye widths (corner to corner) wide, as MediaPipe's eye ROI.
EYE_MARGIN = 2.3
# Face-mesh points of each eye's outer and inner corner (the subject's right eye, then left).
EYE_CORNERS = ((33, 133), (263, 362))
# The first 16 of the iris model's 71 points outline the lids.
LID_POINTS = 16
# Openness (lid height / width) below which a face's eyes count as closed. Measured on real
# faces (bench/keeper.py): open eyes 0.16-0.5 (below 0.2 on 2 of 100 LFW faces, 25-px crops,
# and on none of 42 video frames), the closed eyes of two real blinks 0.14 and 0.18.
EYES_CLOSED_BELOW = 0.2
# The mesh model's face flag (a logit) below which the box is no face.
FACE_PRESENCE_LOGIT = 0.0
# An eye narrower than this, in source pixels, is too small to read.
EYE_MIN_WIDTH = 8.0
# Faces read per image at most, the largest first: each costs ~10 ms (one mesh and two iris
# passes), and a crowd must not cost seconds.
MAX_FACES = 6


@dataclass(frozen=True, slots=True)
class FaceEyes:
    """One face's eyes: their state, and the box around both (x0, y0, x1, y1 in the pixels
    the face boxes were given in), from the mesh's eye corners; None when the mesh model did
    not take the box for a face."""

    state: EyesState
    eyes_box: tuple[float, float, float, float] | None


# OpenCV's networks are not safe to share between threads; one pair per thread, loaded once.
_local = threading.local()


def _nets() -> tuple[Any, Any]:
    nets: tuple[Any, Any] | None = getattr(_local, "eyes", None)
    if nets is None:
        mesh = cv2.dnn.readNetFromTFLite(str(MODELS / "face_landmark.tflite"))
        iris = cv2.dnn.readNetFromTFLite(str(MODELS / "iris_landmark.tflite"))
        nets = (mesh, iris)
        _local.eyes = nets
    return nets


def eyes_states(
    img: Image.Image, faces: list[tuple[int, int, int, int]], scale: float
) -> list[EyesState]:
    """Per face: are its eyes open? `faces` are boxes in pixels of `img` resized by `scale`."""
    return [face.state for face in read_eyes(img, faces, scale)]


def read_eyes(
    img: Image.Image, faces: list[tuple[int, int, int, int]], scale: float
) -> list[FaceEyes]:
    """Per face: its eyes' state and where they are. `faces` are boxes in pixels of `img`
    resized by `scale`; the eye boxes come back in the same pixels.

    Only the MAX_FACES largest faces are read (about 10 ms each); the others are "unknown"."""
    if img.mode != "RGB":  # the models read RGB; the worker's decode already is
        img = img.convert("RGB")
    largest = sorted(range(len(faces)), key=lambda i: -faces[i][2] * faces[i][3])[:MAX_FACES]
    return [
        _face_eyes(img, tuple(v / scale for v in face), scale)
        if i in largest
        else FaceEyes("unknown", None)
        for i, face in enumerate(faces)
    ]


def _face_eyes(img: Image.Image, box: tuple[float, ...], scale: float) -> FaceEyes:
    x, y, w, h = box
    side = max(w, h) * FACE_MARGIN
    # Only the face's surroundings are converted: the decode may be tens of megapixels.
    left, top = round(x + w / 2 - side), round(y + h / 2 - side)
    region = np.asarray(img.crop((left, top, left + round(2 * side), top + round(2 * side))))
    centre = (x + w / 2 - left, y + h / 2 - top)
    points = _mesh_points(region, centre, side)
    if points is None:
        return FaceEyes("unknown", None)
    eye_points = points[[index for pair in EYE_CORNERS for index in pair]]
    low, high = eye_points.min(axis=0), eye_points.max(axis=0)
    eyes_box = (
        (float(low[0]) + left) * scale,
        (float(low[1]) + top) * scale,
        (float(high[0]) + left) * scale,
        (float(high[1]) + top) * scale,
    )
    openness = [
        _eye_openness(region, points, corners, flip=i == 1) for i, corners in enumerate(EYE_CORNERS)
    ]
    if any(value is None for value in openness):
        return FaceEyes("unknown", eyes_box)
    mean = sum(v for v in openness if v is not None) / 2
    return FaceEyes("closed" if mean < EYES_CLOSED_BELOW else "open", eyes_box)


def _crop(
    region: NDArray[Any], centre: tuple[float, float], side: float, angle: float, size: int
) -> tuple[NDArray[Any], NDArray[np.float64]]:
    """A size x size crop of `region` around `centre`, `side` wide, turned by `angle` degrees;
    with the transform back to `region`'s pixels."""
    matrix = np.asarray(cv2.getRotationMatrix2D(centre, angle, size / side), dtype=np.float64)
    matrix[:, 2] += (size / 2 - centre[0], size / 2 - centre[1])
    crop: NDArray[Any] = cv2.warpAffine(region, matrix, (size, size), flags=cv2.INTER_LINEAR)
    back = np.asarray(cv2.invertAffineTransform(matrix), dtype=np.float64)
    return crop, back


def _run(net: Any, crop: NDArray[Any], outputs: list[str]) -> list[NDArray[np.float32]]:
    net.setInput(cv2.dnn.blobFromImage(crop, 1 / 255.0))  # the models take RGB in [0, 1]
    result: list[NDArray[np.float32]] = net.forward(outputs)
    return result


def _mesh_points(
    region: NDArray[Any], centre: tuple[float, float], side: float
) -> NDArray[np.float64] | None:
    """The 468 face-mesh points in `region`'s pixels, or None when the model sees no face."""
    crop, back = _crop(region, centre, side, 0.0, MESH_SIDE)
    flag, points = _run(_nets()[0], crop, ["conv2d_31", "conv2d_21"])
    if float(flag.ravel()[0]) < FACE_PRESENCE_LOGIT:
        return None
    xy = points.reshape(-1, 3)[:, :2].astype(np.float64)
    mapped: NDArray[np.float64] = xy @ back[:, :2].T + back[:, 2]
    return mapped


def _eye_openness(
    region: NDArray[Any], points: NDArray[np.float64], corners: tuple[int, int], flip: bool
) -> float | None:
    """Lid height over width from the iris model, or None for an eye too small to read."""
    outer, inner = points[corners[0]], points[corners[1]]
    width = float(np.linalg.norm(inner - outer))
    if width < EYE_MIN_WIDTH:
        return None
    dx, dy = (inner - outer) if not flip else (outer - inner)
    angle = float(np.degrees(np.arctan2(dy, dx)))  # levels the eye: the head's roll
    centre = (float(outer[0] + inner[0]) / 2, float(outer[1] + inner[1]) / 2)
    crop, _ = _crop(region, centre, width * EYE_MARGIN, angle, EYE_SIDE)
    if flip:  # the iris model reads a left eye (the subject's); the other is mirrored
        crop = np.ascontiguousarray(crop[:, ::-1])
    contours, _iris = _run(_nets()[1], crop, ["output_eyes_contours_and_brows", "output_iris"])
    lids = contours.reshape(-1, 3)[:LID_POINTS, :2]
    span = lids.max(axis=0) - lids.min(axis=0)
    return float(span[1] / span[0]) if span[0] > 0 else None
