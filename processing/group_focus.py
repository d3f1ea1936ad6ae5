"""Subject focus judged within a group: which frame focused what the frames share.

Frames of one burst show one scene, so their tile sharpness maps (processing.quality's
`focus_tiles`) line up tile for tile. Alone, a frame with a soft subject on a busy sharp
background can outscore the frame that focused the subject: foliage holds more detail than a
face or a cup. Side by side, the tiles say which frame is sharp *where*: each tile's sharpness
is taken as a share of the group's sharpest at that tile, and the frame's relative focus is the
mean of those shares over the tiles where the frames differ (a background sharp in every frame,
or a flat sky, cancels out). Which of those tiles are the subject: those near the centre, and
those of a compact sharp zone (a subject is small against the background around it, wherever
it is placed), so each tile also weighs (the share of the clear tiles its sharpest frame owns)
** -COMPACTNESS. The best frame's absolute subject sharpness times that share is what the
comparison gives each frame; its sharpness within the group is the geometric mean of that and
its own subject sharpness alone (ALONE_WEIGHT): sharp where the frames differ *and* sharp in
itself. Faces still decide FACE_WEIGHT of it, as in the frame's own score.

Chosen with python -m bench.keeper_group (bench/results/keeper_group.txt): bench/keeper.py's
focus and shake cases and shallow focus with the subject at a third point, from three
independent sources of real photos (the libraries' samples, the MATE/GNOME wallpapers, the
Ubuntu wallpaper contest's photographs); each source's figure with the setting chosen on the
other two. Before (comparison only, QUALITY_VERSION 6's tiles): 124/129 and 143/172; now
(with each frame's own sharpness, and grain within the noise estimate's error counted as no
detail: quality.NOISE_DETAIL_SHARE): 127/129 and 144/172. On the two sources of the first
run, each chosen on the other: 79/87 -> 83/87 and 98/116 -> 99/116. Power 2, compactness 3
are chosen on all three sources. The shallow-focus cases are made from real photos (a region
blurred); no real refocused burst was found offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from processing.quality import (
    SUBJECT_HALF_POINT,
    Judged,
    combined_score,
    sharpness_score,
    subject_region_value,
    subject_sharpness,
    tile_distance,
)

# A tile's weight falls as (1 - distance from the centre) ** CENTRE_POWER (1 at the centre,
# 0 at a corner): what the frames differ on near the centre is the subject.
CENTRE_POWER = 2.0
# ... and as (the share of the clear tiles its sharpest frame owns) ** -COMPACTNESS: a subject
# is compact, a background around it is not, wherever the subject is placed.
COMPACTNESS = 3.0
# A tile is clearly one frame's when the softest frame keeps less than half its sharpness.
ZONE_DIFFER = 0.5
# Each frame's subject sharpness within the group is the geometric mean of what the comparison
# gives it (the best frame's sharpness times its share) and its own, alone, with this exponent
# on its own: equal say, not tuned. A frame must be sharp where the frames differ *and* sharp
# in itself: a few noise-grained tiles of a frame soft everywhere else, which the comparison
# can take for a compact subject, do not outweigh a frame that is in focus.
ALONE_WEIGHT = 0.5
# Tiles whose sharpest frame stays below this noise-corrected Laplacian variance hold no detail
# in any frame (sky, a wall); their shares are noise and are left out.
DETAIL_FLOOR = 50.0


@dataclass(frozen=True, slots=True)
class GroupJudged:
    """An image's judged parts with its sharpness and score as judged within its group."""

    id: int
    quality_score: float | None
    sharpness: float | None
    exposure: float | None
    motion_blur: float | None
    brightness: float | None
    face_sharpness: float | None
    eye_sharpness: float | None
    eyes: str | None


def member(
    image_id: int, image: Judged, focus_tiles: list[list[float]] | None
) -> tuple[GroupJudged, NDArray[np.float64] | None]:
    """A judged image (a row, or the scores of a frame) as judged_in_group takes it."""
    parts = GroupJudged(
        image_id,
        image.quality_score,
        image.sharpness,
        image.exposure,
        image.motion_blur,
        image.brightness,
        image.face_sharpness,
        image.eye_sharpness,
        image.eyes,
    )
    return parts, None if focus_tiles is None else np.asarray(focus_tiles, dtype=np.float64)


def relative_focus(
    maps: Sequence[NDArray[np.float64]],
    centre_power: float = CENTRE_POWER,
    compactness: float = COMPACTNESS,
    detail_floor: float = DETAIL_FLOOR,
) -> list[float] | None:
    """Each frame's share of the group's best focus (1 = sharpest wherever the frames differ);
    None when the maps cannot be compared: fewer than two, of different shapes, or no tile
    with detail on which they differ."""
    if len(maps) < 2 or len({m.shape for m in maps}) != 1:
        return None
    tiles = np.stack(maps)
    best, worst = tiles.max(axis=0), tiles.min(axis=0)
    differ = np.where(best > detail_floor, 1.0 - worst / np.maximum(best, 1e-9), 0.0)
    # Each frame's zone: the tiles it is clearly the sharpest on. A smaller zone weighs more
    # per tile: the subject is compact, the background around it is not.
    owner = tiles.argmax(axis=0)
    clear = differ > ZONE_DIFFER
    zone = np.bincount(owner[clear], minlength=len(maps)) / max(1, int(clear.sum()))
    zone_share = np.where(zone[owner] > 0, zone[owner], 1.0)
    centre = np.clip(1.0 - tile_distance(best.shape), 0.0, None) ** centre_power
    weight = centre * differ * zone_share ** (-compactness)
    total = float(weight.sum())
    if not total > 0:
        return None
    shares = tiles / np.maximum(best, 1e-9)
    return [float(v) for v in (shares * weight).sum(axis=(1, 2)) / total]


def judged_in_group(
    members: Sequence[tuple[GroupJudged, NDArray[np.float64] | None]],
    centre_power: float = CENTRE_POWER,
    compactness: float = COMPACTNESS,
    alone_weight: float = ALONE_WEIGHT,
) -> list[GroupJudged]:
    """The members with sharpness and quality score as judged within the group; as they are
    when their focus maps cannot be compared (a member not judged, or framed otherwise).
    `alone_weight` 0 judges by the comparison only (the judge before ALONE_WEIGHT)."""
    judged = [image for image, _ in members]
    maps = [tiles for _, tiles in members]
    if any(m is None or image.quality_score is None for image, m in members):
        return judged
    shares = relative_focus([m for m in maps if m is not None], centre_power, compactness)
    if shares is None:
        return judged
    alone = [
        sharpness_score(subject_region_value(m), SUBJECT_HALF_POINT) for m in maps if m is not None
    ]
    best = max(alone)
    result = []
    for image, share, own in zip(judged, shares, alone, strict=True):
        region = (best * share) ** (1.0 - alone_weight) * own**alone_weight
        sharpness = subject_sharpness(region, image.face_sharpness)
        score = combined_score(
            sharpness, image.motion_blur or 0.0, image.exposure or 0.0, image.eyes
        )
        result.append(
            GroupJudged(
                image.id,
                score,
                sharpness,
                image.exposure,
                image.motion_blur,
                image.brightness,
                image.face_sharpness,
                image.eye_sharpness,
                image.eyes,
            )
        )
    return result


# Focus stacks: a tile is decided by a frame sharper there than the group's median frame by
# STACK_RATIO or more (a shaken or missed frame among steady ones moves no median); a stack has
# at least MIN_STACK_FRAMES frames each deciding STACK_SHARE of those tiles, and those tiles are
# STACK_DECISIVE of the tiles with detail (a person walking through a burst decides a few).
MIN_STACK_FRAMES = 3
STACK_RATIO = 2.0
STACK_SHARE = 0.1
STACK_DECISIVE = 0.3


def is_focus_stack(maps: Sequence[NDArray[np.float64]]) -> bool:
    """Are these frames of one framing a focus stack: does the sharp region move from frame to
    frame, each of several frames the sharpest on its own part of the scene?"""
    if len(maps) < MIN_STACK_FRAMES or len({m.shape for m in maps}) != 1:
        return False
    tiles = np.stack(maps)
    best = tiles.max(axis=0)
    detail = best > DETAIL_FLOOR
    decisive = detail & (best >= STACK_RATIO * np.median(tiles, axis=0))
    count = int(decisive.sum())
    if count == 0 or count < STACK_DECISIVE * int(detail.sum()):
        return False
    owners = np.bincount(tiles.argmax(axis=0)[decisive], minlength=len(maps))
    return int((owners >= STACK_SHARE * count).sum()) >= MIN_STACK_FRAMES
