"""A judge fitted to the photographer's taste: weights over the judge's parts, learned from the
keepers they chose and the frames they rejected.

The fitted judge scores a frame as a weighted sum of its parts (`PARTS`). With the default
weights that sum is the default judge's score before its eyes factor (0.7 x sharpness, docked
for shake, + 0.3 x exposure), so the default order is today's order exactly: closed eyes still
go first as a rule (a culler never keeps a blink over the same moment with open eyes), then
the score. The other parts start at 0 and count only as much as the choices ask.

Each choice gives pairs (the chosen keeper over each other member of its group; each other
member over a rejected frame); pairs the eyes rule decides teach nothing and are left out. The
weights minimise the pairs' logistic loss plus a pull toward the default weights (a Gaussian
prior, `PRIOR_STRENGTH`), so a handful of choices moves them a little and many move them far.
Agreement is measured on choices held back: each group is left out of the fit in turn and the
fitted and the default judge each pick its keeper (`held_out_agreement`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from processing.quality import (
    EXPOSURE_WEIGHT,
    SHARPNESS_WEIGHT,
    Judged,
    closed_share,
    steadiness,
)

# The judge's parts the weights are over, each in [0, 1] (`part_values`).
PARTS = (
    "sharpness",  # the subject's (or faces') focus, docked for shake as the judge docks it
    "exposure",
    "motion_blur",
    "brightness",
    "face_sharpness",  # the subject's sharpness where no face was measured
    "eye_sharpness",  # the face's sharpness where no eyes were placed
)
DEFAULT_WEIGHTS: dict[str, float] = {
    "sharpness": SHARPNESS_WEIGHT,
    "exposure": EXPOSURE_WEIGHT,
    "motion_blur": 0.0,
    "brightness": 0.0,
    "face_sharpness": 0.0,
    "eye_sharpness": 0.0,
}
# Score differences between frames of one burst are a few hundredths: SCALE turns them into
# logits of about one (a difference of 0.05 is a 73% preference).
SCALE = 20.0
# The pull toward the default weights: the loss of PRIOR_STRENGTH / 2 x the squared distance.
# At 10 a part's weight moves about 0.1 for every ten consistent pairs that differ by 0.05 in it.
PRIOR_STRENGTH = 10.0
# Above this many groups, held-out agreement leaves out one of FOLDS folds of groups at a time
# instead of one group (a fit per group would grow with the square of the library).
MAX_LEAVE_ONE_OUT = 200
FOLDS = 20


def part_values(image: Judged) -> NDArray[np.float64] | None:
    """The image's parts in the order of PARTS; None when it was never judged."""
    if image.sharpness is None or image.exposure is None:
        return None
    motion = image.motion_blur or 0.0
    face = image.face_sharpness if image.face_sharpness is not None else image.sharpness
    eye = image.eye_sharpness if image.eye_sharpness is not None else face
    brightness = image.brightness if image.brightness is not None else 0.5
    return np.array(
        [image.sharpness * steadiness(motion), image.exposure, motion, brightness, face, eye]
    )


def weight_vector(weights: Mapping[str, float]) -> NDArray[np.float64]:
    return np.array([float(weights.get(name, 0.0)) for name in PARTS])


def fitted_score(image: Judged, weights: NDArray[np.float64]) -> float | None:
    """The weighted sum of the image's parts (None: never judged)."""
    values = part_values(image)
    return None if values is None else float(values @ weights)


@dataclass(frozen=True, slots=True)
class Choice:
    """One group's decisions: its members' parts and eyes, and who the photographer kept and
    rejected (indexes into `members`)."""

    members: Sequence[Judged]
    kept: frozenset[int]
    rejected: frozenset[int]

    def preferences(self) -> list[tuple[int, int]]:
        """(preferred, other) pairs: each keeper over each member not kept, each member not
        rejected over each rejected one."""
        pairs = {(k, o) for k in self.kept for o in range(len(self.members)) if o not in self.kept}
        pairs |= {
            (o, r)
            for r in self.rejected
            for o in range(len(self.members))
            if o not in self.rejected
        }
        return sorted(pairs)


def _training_pairs(choices: Iterable[Choice]) -> NDArray[np.float64]:
    """Part differences (preferred - other) of the pairs only the score decides."""
    rows: list[NDArray[np.float64]] = []
    for choice in choices:
        values = [part_values(m) for m in choice.members]
        for a, b in choice.preferences():
            va, vb = values[a], values[b]
            if va is None or vb is None:
                continue
            if closed_share(choice.members[a].eyes) != closed_share(choice.members[b].eyes):
                continue
            rows.append(va - vb)
    return np.array(rows) if rows else np.zeros((0, len(PARTS)))


def fit_weights(choices: Iterable[Choice], prior: NDArray[np.float64]) -> NDArray[np.float64]:
    """The weights that best explain the choices' pairs, pulled toward `prior`: Newton's method
    on the regularised logistic loss (convex), each step halved until the loss falls (a full
    step overshoots, back and forth, where the default judge gets every pair wrong)."""
    diffs = _training_pairs(choices) * SCALE

    def loss(weights: NDArray[np.float64]) -> float:
        fit = float(np.logaddexp(0.0, -(diffs @ weights)).sum())
        return fit + PRIOR_STRENGTH / 2 * float(((weights - prior) ** 2).sum())

    weights = prior.copy()
    current = loss(weights)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(np.clip(diffs @ weights, -50.0, 50.0)))  # chance it is wrong
        gradient = -diffs.T @ p + PRIOR_STRENGTH * (weights - prior)
        curvature = (diffs * (p * (1.0 - p))[:, None]).T @ diffs
        step = np.linalg.solve(curvature + PRIOR_STRENGTH * np.eye(len(prior)), gradient)
        size = 1.0
        while loss(weights - size * step) > current and size > 1e-6:
            size /= 2
        weights = weights - size * step
        previous, current = current, loss(weights)
        if previous - current < 1e-10:
            break
    return weights


def order_key(image: Judged, weights: NDArray[np.float64] | None) -> tuple[bool, float, float]:
    """Sorts best first: judged before unjudged; fewer closed eyes (the share of the faces
    whose eyes were read) before more, however crisp the blink; then the higher score (the
    fitted one with `weights`, the default judge's quality score without). A culler never keeps
    a blink over the same moment with open eyes, so eyes come before the score rather than as a
    weight in it (which a crisper blink outscored)."""
    score = image.quality_score if weights is None else fitted_score(image, weights)
    return (image.quality_score is None, closed_share(image.eyes), -(score or 0.0))


def judge_order(members: Sequence[Judged], weights: NDArray[np.float64] | None) -> list[int]:
    """Member indexes, best first (order_key, then the first listed)."""
    return sorted(range(len(members)), key=lambda i: (*order_key(members[i], weights), i))


@dataclass(frozen=True, slots=True)
class Agreement:
    """How often a judge agrees with held-back choices."""

    keepers_right: int  # groups whose keeper the judge ranked first
    keepers: int  # groups with a kept frame
    pairs_right: int
    pairs: int


def _agreement(
    choices: Sequence[Choice], weights: Sequence[NDArray[np.float64] | None]
) -> Agreement:
    keepers_right = keepers = pairs_right = pairs = 0
    for choice, w in zip(choices, weights, strict=True):
        order = judge_order(choice.members, w)
        place = {index: at for at, index in enumerate(order)}
        if choice.kept:
            keepers += 1
            keepers_right += order[0] in choice.kept
        for a, b in choice.preferences():
            pairs += 1
            pairs_right += place[a] < place[b]
    return Agreement(keepers_right, keepers, pairs_right, pairs)


@dataclass(frozen=True, slots=True)
class HeldOut:
    fitted: Agreement
    default: Agreement
    folds: int  # how many fits: one per group, or FOLDS


def held_out_agreement(choices: Sequence[Choice], prior: NDArray[np.float64]) -> HeldOut:
    """Each group's choices judged by weights fitted without them (leave one group out; past
    MAX_LEAVE_ONE_OUT groups, FOLDS folds of groups), beside the default judge."""
    count = len(choices)
    folds = count if count <= MAX_LEAVE_ONE_OUT else FOLDS
    held: list[NDArray[np.float64] | None] = [None] * count
    for fold in range(folds):
        kept_out = set(range(fold, count, folds))
        weights = fit_weights([c for i, c in enumerate(choices) if i not in kept_out], prior)
        for i in kept_out:
            held[i] = weights
    return HeldOut(_agreement(choices, held), _agreement(choices, [None] * count), folds)


def no_worse(fitted: Agreement, default: Agreement) -> bool:
    """The fitted judge is used only when it agrees with held-back choices at least as often
    as the default, on keepers and on pairs."""
    return (
        fitted.keepers_right >= default.keepers_right and fitted.pairs_right >= default.pairs_right
    )
