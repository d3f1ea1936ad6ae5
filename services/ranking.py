"""Ranking within groups: the judge's order (quality), with the photographer's picks on top.

`suggested_rank` is the judge's own order; `quality_rank`, what a client shows, puts the images
the photographer kept first and those they rejected last, the rest in the judge's order. Each
frame of a set kept whole (a bracket, a focus stack) and each Ungrouped image ranks 1; who
counts as a keeper is database.readiness.is_keeper's rule alone (an undecided Ungrouped image is
not one). Within a burst the frames are judged side by side (processing/group_focus.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from crud import crud_batch, crud_decision, crud_image, crud_judge
from crud.crud_batch import MemberRank
from database import readiness
from processing.group_focus import GroupJudged, judged_in_group, member
from processing.grouping import camera_key
from processing.judge_fit import order_key, weight_vector
from processing.quality import Judged, rank_reason
from processing.sets import BURST, KEPT_WHOLE, Frame, group_kinds, sweep_candidates

# Below the shown keeper: the judge's suggestion the photographer passed over, and an image
# the photographer rejected.
USER_CHOICE = "user_choice"
USER_REJECTED = "user_rejected"
# Below a frame that only the judge fitted to the photographer's choices prefers (the default
# judge would rank it first of the two).
FITTED_TASTE = "fitted_taste"
_PICK_ORDER = {"keep": 0, None: 1, "reject": 2}


class RankedImage(Judged, Protocol):
    """What ranking reads of an image: its quality parts and its id (an Image or a row)."""

    @property
    def id(self) -> int: ...


class MappedImage(RankedImage, Protocol):
    """An image with its tile sharpness map (crud_image.judged_rows)."""

    @property
    def focus_tiles(self) -> list[list[float]] | None: ...


J = TypeVar("J", bound=RankedImage)


def rank_by_quality(images: Iterable[J], weights: NDArray[np.float64] | None = None) -> list[J]:
    """Best first by processing.judge_fit.order_key (the fitted judge's score with `weights`,
    the default judge's without), then the earliest upload."""
    return sorted(images, key=lambda i: (*order_key(i, weights), i.id))


def judged_side_by_side(members: Sequence[MappedImage]) -> list[GroupJudged]:
    """A group's members with sharpness and score as judged against each other (a soft subject
    on a sharp background loses to the frame that focused it: processing/group_focus.py)."""
    return judged_in_group([member(m.id, m, m.focus_tiles) for m in members])


def ranked_members(
    labels: Mapping[int, str],
    images: Mapping[int, MappedImage],
    kinds: Mapping[str, str],
    user_picks: Mapping[int, str],
    weights: NDArray[np.float64] | None = None,
) -> dict[int, MemberRank]:
    """Each image's label, shown rank, reason (below rank 1), the judge's rank and the group's
    kind, by image id; `weights`: the fitted judge's, None for the default."""
    groups: dict[str, list[MappedImage]] = defaultdict(list)
    for image_id, label in labels.items():
        groups[label].append(images[image_id])
    result: dict[int, MemberRank] = {}
    for label, members in groups.items():
        kind = kinds.get(label, BURST) if readiness.is_grouped(label) else None
        if kind is None or kind in KEPT_WHOLE:
            for member in members:
                result[member.id] = MemberRank(label, 1, None, 1, kind)
            continue
        suggested = rank_by_quality(judged_side_by_side(members), weights)
        shown = sorted(suggested, key=lambda i: _PICK_ORDER[user_picks.get(i.id)])
        # Reasons are said against the judge's best frame the photographer did not reject.
        best = next((i for i in suggested if user_picks.get(i.id) != "reject"), suggested[0])
        judge_rank = {image.id: at for at, image in enumerate(suggested, start=1)}
        for position, image in enumerate(shown, start=1):
            result[image.id] = MemberRank(
                label,
                position,
                None if position == 1 else _reason(image, best, user_picks.get(image.id), weights),
                judge_rank[image.id],
                kind,
            )
    return result


def _reason(
    image: RankedImage, best: RankedImage, pick: str | None, weights: NDArray[np.float64] | None
) -> str:
    if pick == "reject":
        return USER_REJECTED
    if image is best:
        return USER_CHOICE
    if weights is not None and order_key(image, None) < order_key(best, None):
        return FITTED_TASTE
    return rank_reason(image, best)


def frames(rows: Sequence[Any]) -> list[Frame]:
    """crud_image.frame_rows as processing.sets frames."""
    return [
        Frame(
            row.id,
            row.shot_at,
            camera_key(*row[2:5]),
            row.exposure_bias,
            row.exposure_mode,
            row.focus_tiles,
            row.focal_length,
            row.exposure_time,
            row.f_number,
            row.iso,
            row.focus_distance,
        )
        for row in rows
    ]


def batch_frames(session: Session, batch_id: int) -> tuple[list[Frame], dict[int, bytes]]:
    """The batch's members as frames, and the looks of those that may be panorama sweeps
    (read only for them: most members are not)."""
    found = frames(crud_image.frame_rows(session, batch_id))
    candidates = {frame.id for run in sweep_candidates(found) for frame in run}
    return found, crud_image.looks_of(session, candidates)


def rank_labelled(
    session: Session, batch_id: int, labels: Mapping[int, str], kinds: Mapping[str, str] | None
) -> None:
    """Rank the members `labels` names (a whole batch, or some of its groups) and store it;
    `kinds`: each group's kind, or None to tell them from the members as they are."""
    if kinds is None:
        kinds = group_kinds(labels, *batch_frames(session, batch_id))
    judged = {row.id: row for row in crud_image.judged_rows(session, batch_id)}
    picks = crud_decision.user_picks(session, batch_id)
    fitted = crud_judge.fitted_weights(session)
    weights = None if fitted is None else weight_vector(fitted)
    ranks = ranked_members(labels, judged, kinds, picks, weights)
    crud_batch.set_member_labels(session, batch_id, ranks)


def rerank_groups(session: Session, batch_id: int, group_labels: Iterable[str]) -> None:
    """Rank these groups of the batch again, their members and kinds as they are."""
    wanted = set(group_labels)
    members = crud_decision.group_labels(session, batch_id)
    labels = {i: label for i, label in members.items() if label is not None and label in wanted}
    kinds = crud_decision.group_kinds_of(session, batch_id)
    rank_labelled(session, batch_id, labels, {k: v for k, v in kinds.items() if k in wanted})
