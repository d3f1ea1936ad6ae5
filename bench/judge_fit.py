"""Fitted judge vs default judge on recorded keeper choices of real cards, held out by group.

    .venv/bin/python -m bench.judge_fit

The judge's weights are fitted (processing/judge_fit.py) to keeper choices of real cards and
measured on choices held back: each group is left out of the fit in turn, and the fitted and
the default judge each rank its frames; a group counts as right when the chosen keeper ranks
first. The fit's constants (SCALE, PRIOR_STRENGTH) were set before this ran, not tuned on it.

How the choices were made:
- By eye (real bursts in tests/data): the helper who wrote this looked at each group's frames
  side by side and chose the one a photographer would keep, for the reason given beside each
  (moment, expression, framing, eyes); groups whose frames cannot be told apart (the empty
  bollards, tree 030-042, vtest 020/022 and 480-484) were not chosen. These are choices by
  taste that the judge's parts may not see.
- By construction (bench.keeper's groups of real photographs: skimage, opencv-doc, MATE/GNOME
  wallpapers): the unaltered frame against its shallow-focus opposite, a shaken copy, a missed
  focus at high ISO; the keeper is the frame not degraded.
- A simulated taste, reported apart: a low-key photographer who keeps, of two frames of one
  real photo, the one 20% darker (what tests/api/test_fitted_judge.py does through HTTP). It
  shows whether the fit learns a taste the default judge does not have.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
from PIL import Image, ImageEnhance

from bench.keeper import make_groups, real_photos
from processing.group_focus import GroupJudged, judged_in_group, member
from processing.judge_fit import (
    DEFAULT_WEIGHTS,
    PARTS,
    PRIOR_STRENGTH,
    SCALE,
    Choice,
    fit_weights,
    held_out_agreement,
    no_worse,
    weight_vector,
)
from processing.quality import assess_quality

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"

# Group -> (frames, the one kept, why), chosen by eye.
BY_EYE: dict[str, tuple[tuple[str, ...], str, str]] = {
    "walker": (
        tuple(f"moments/a-street-walker-0{k}-f{190 + 3 * k}.jpg" for k in range(4)),
        "moments/a-street-walker-01-f193.jpg",
        "both legs in frame mid-stride, feet least smeared",
    ),
    "suit": (
        tuple(f"moments/c-street-suit-0{k}-f0{31 + 4 * k}.jpg" for k in range(5)),
        "moments/c-street-suit-00-f031.jpg",
        "face frontal and lit, whole figure in frame",
    ),
    "her-crying": (
        tuple(f"moments/b-portraits-her-crying-0{k}-f0{8 + 4 * k:02d}.jpg" for k in range(3)),
        "moments/b-portraits-her-crying-01-f012.jpg",
        "the expression, eyes least shut",
    ),
    "her-hand": (
        tuple(f"moments/b-portraits-her-hand-0{k}-f{160 + 6 * k}.jpg" for k in range(3)),
        "moments/b-portraits-her-hand-01-f166.jpg",
        "clear upward gaze, hand at the mouth",
    ),
    "him-blink": (
        tuple(f"moments/b-carphone-him-blink-0{k}-f0{86 + 4 * k}.jpg" for k in range(3)),
        "moments/b-carphone-him-blink-01-f090.jpg",
        "eyes open on the camera, mouth closed",
    ),
    "him-talking": (
        tuple(f"moments/b-carphone-him-talking-0{k}-f0{10 + 4 * k:02d}.jpg" for k in range(3)),
        "moments/b-carphone-him-talking-01-f014.jpg",
        "looking into the camera, face centred",
    ),
    "taxi": (
        tuple(f"moments/d-street-taxi-0{k}-f0{64 + 4 * k}.jpg" for k in range(3)),
        "moments/d-street-taxi-01-f068.jpg",
        "the TAXI sign whole and centred",
    ),
    "vtest-150": (
        ("real_card/vtest-150.jpg", "real_card/vtest-152.jpg", "real_card/vtest-154.jpg"),
        "real_card/vtest-150.jpg",
        "the walkers apart, none hidden by the sign post",
    ),
    "tree-400": (
        ("real_card/tree-400.jpg", "real_card/tree-405.jpg", "real_card/tree-410.jpg"),
        "real_card/tree-405.jpg",
        "the hand whole in frame, fingers apart",
    ),
    "blink-40": (
        ("eyes/carphone-040.png", "eyes/carphone-042.png"),
        "eyes/carphone-040.png",
        "eyes open (042 is the blink)",
    ),
    "blink-90": (
        ("eyes/carphone-090.png", "eyes/carphone-092.png"),
        "eyes/carphone-090.png",
        "eyes open (092 is the blink)",
    ),
}


def judged(images: Sequence[Image.Image]) -> list[GroupJudged]:
    """The frames' parts as the server ranks them: side by side within their group."""
    scores = [assess_quality(img.convert("RGB")) for img in images]
    return judged_in_group([member(i, s, s.focus_tiles) for i, s in enumerate(scores)])


def by_eye_choices() -> list[Choice]:
    choices = []
    for frames, kept, _ in BY_EYE.values():
        parts = judged([Image.open(DATA / f) for f in frames])
        choices.append(Choice(parts, frozenset([frames.index(kept)]), frozenset()))
    return choices


def constructed_choices(photos: dict[str, Image.Image]) -> list[Choice]:
    return [
        Choice(judged(group.frames), frozenset([0]), frozenset()) for group in make_groups(photos)
    ]


def low_key_choices(photos: dict[str, Image.Image]) -> list[Choice]:
    choices = []
    for photo in photos.values():
        darker = ImageEnhance.Brightness(photo).enhance(0.8)
        choices.append(Choice(judged([photo, darker]), frozenset([1]), frozenset()))
    return choices


def report(name: str, choices: list[Choice]) -> dict[str, object]:
    prior = weight_vector(DEFAULT_WEIGHTS)
    held = held_out_agreement(choices, prior)
    weights = fit_weights(choices, prior)
    f, d = held.fitted, held.default
    used = "fitted" if no_worse(f, d) else "default (fallback)"
    print(
        f"  {name:46s} keepers: fitted {f.keepers_right:3d}/{f.keepers:<3d}"
        f" default {d.keepers_right:3d}/{d.keepers:<3d}   pairs: fitted"
        f" {f.pairs_right:3d}/{f.pairs:<3d} default {d.pairs_right:3d}/{d.pairs:<3d}  -> {used}"
    )
    fitted = {p: round(float(w), 3) for p, w in zip(PARTS, weights, strict=True)}
    print(f"  {'':46s} weights fitted on all: {json.dumps(fitted)}")
    return fitted


def main() -> None:
    cv2.setNumThreads(1)
    print(f"command: .venv/bin/python -m bench.judge_fit   (pid {os.getpid()})")
    default = {part: round(weight, 3) for part, weight in DEFAULT_WEIGHTS.items()}
    print(f"fit: SCALE={SCALE}, PRIOR_STRENGTH={PRIOR_STRENGTH}; default weights {default}")
    print("choices by eye:")
    for group, (frames, kept, why) in BY_EYE.items():
        print(f"  {group:12s} {len(frames)} frames, kept {kept.split('/')[-1]}: {why}")
    photos = real_photos()
    eye = by_eye_choices()
    made = constructed_choices(photos)
    print("\nLeave-one-group-out agreement with the recorded keeper choices (right = kept first)")
    report("by eye, real bursts in tests/data", eye)
    report("by construction, bench.keeper groups", made)
    report("all recorded choices", eye + made)
    print("\nSimulated taste (not a recorded choice): low key, the 20% darker frame kept")
    report(f"low key, {len(photos)} real photos", low_key_choices(photos))


if __name__ == "__main__":
    main()
