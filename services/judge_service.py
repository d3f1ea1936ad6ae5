"""The judge fitted to the photographer's taste (opt-in, for the whole library): fit its weights
from their keeper choices and rejects, show them with how often they agree with held-back
choices, or go back to the default judge.

Fitting is the opt-in: every group of the library is ranked again with the fitted weights,
and so are later ones (analyze, rank, a keeper chosen), unless on the library's own held-back
choices the fitted judge agreed less often than the default, in which case the default keeps
ranking and `note` says so. User decisions are never touched: a rank puts them where they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from sqlalchemy.orm import Session

from crud import crud_batch, crud_judge
from crud.crud_decision import USER
from processing.judge_fit import (
    DEFAULT_WEIGHTS,
    FOLDS,
    PARTS,
    Choice,
    HeldOut,
    fit_weights,
    held_out_agreement,
    no_worse,
    weight_vector,
)
from services import ranking
from services.errors import Conflict

FITTED = "fitted"
DEFAULT = "default"
# Fewer groups leave nothing to hold back: each fold must learn from another group.
MIN_GROUPS = 2


@dataclass(frozen=True, slots=True)
class JudgeState:
    """What GET /judge shows."""

    in_use: str  # "fitted" or "default"
    weights: dict[str, float]  # the weights ranking uses
    default_weights: dict[str, float]
    fitted_weights: dict[str, float] | None  # None until the library opts in
    groups: int  # groups whose choices the fit learned from
    pairs: int  # preferences those choices give
    agreement: dict[str, Any] | None  # held-back agreement, fitted and default
    fitted_at: datetime | None
    note: str


def _choices(rows: Sequence[Any]) -> list[Choice]:
    """The photographer's choices, one per group of two or more members."""
    choices: list[Choice] = []
    for _, members in groupby(rows, key=lambda r: (r.batch_id, r.group_label)):
        group = list(members)
        mine = [r.pick if r.decided_by == USER else None for r in group]
        if len(group) < 2:
            continue
        choices.append(
            Choice(
                # As ranking judges them: side by side (focus compared tile for tile).
                ranking.judged_side_by_side(group),
                frozenset(i for i, pick in enumerate(mine) if pick == "keep"),
                frozenset(i for i, pick in enumerate(mine) if pick == "reject"),
            )
        )
    return [c for c in choices if c.preferences()]


def _agreement(held: HeldOut, groups: int) -> dict[str, Any]:
    method = "leave-one-group-out" if held.folds == groups else f"{FOLDS} folds of groups"
    return {"method": method, "fitted": asdict(held.fitted), "default": asdict(held.default)}


def _note(in_use: str, held: HeldOut) -> str:
    fitted, default = held.fitted, held.default
    figures = (
        f"on held-back choices the fitted judge ranked first {fitted.keepers_right} of"
        f" {fitted.keepers} keepers ({fitted.pairs_right}/{fitted.pairs} pairs), the default"
        f" judge {default.keepers_right} ({default.pairs_right}/{default.pairs} pairs)"
    )
    if in_use == FITTED:
        return f"The fitted weights rank: {figures}."
    return f"The default judge ranks, the fitted one did worse: {figures}."


def fit_judge(session: Session) -> JudgeState:
    """Fit the judge's weights to every keeper choice and reject in the library, measure them
    on held-back choices, and use them when they do no worse than the default."""
    choices = _choices(crud_judge.choice_rows(session))
    if len(choices) < MIN_GROUPS:
        raise Conflict(
            "The judge learns from the keepers you choose and the frames you reject: "
            f"{len(choices)} group(s) have such a choice, at least {MIN_GROUPS} are needed."
        )
    prior = weight_vector(DEFAULT_WEIGHTS)
    weights = dict(
        zip(PARTS, (round(float(w), 4) for w in fit_weights(choices, prior)), strict=True)
    )
    held = held_out_agreement(choices, prior)
    in_use = FITTED if no_worse(held.fitted, held.default) else DEFAULT
    values = {
        "weights": weights,
        "in_use": in_use,
        "groups": len(choices),
        "pairs": sum(len(c.preferences()) for c in choices),
        "agreement": _agreement(held, len(choices)),
        "note": _note(in_use, held),
    }
    crud_judge.save_profile(session, values, datetime.now(UTC))
    _rerank_library(session)
    return judge_state(session)


def _rerank_library(session: Session) -> None:
    """Every group of one keeper ranked again with the weights now in use (batches locked in
    id order, as every writer of several batches does)."""
    groups = crud_judge.ranked_groups(session)
    for batch_id in sorted(crud_batch.lock_batches(session, groups)):
        ranking.rerank_groups(session, batch_id, groups[batch_id])
    session.flush()


def judge_state(session: Session) -> JudgeState:
    """The weights that rank, the fitted ones and how they did on held-back choices."""
    row = crud_judge.profile(session)
    if row is None:
        return JudgeState(
            DEFAULT,
            dict(DEFAULT_WEIGHTS),
            dict(DEFAULT_WEIGHTS),
            None,
            0,
            0,
            None,
            None,
            "The default judge ranks; POST /judge/fit learns from your keeper choices and rejects.",
        )
    return JudgeState(
        row.in_use,
        dict(row.weights) if row.in_use == FITTED else dict(DEFAULT_WEIGHTS),
        dict(DEFAULT_WEIGHTS),
        dict(row.weights),
        row.groups,
        row.pairs,
        dict(row.agreement),
        row.fitted_at,
        row.note,
    )


def reset_judge(session: Session) -> JudgeState:
    """Back to the default judge: the fitted weights are forgotten, the library ranked again."""
    crud_judge.delete_profile(session)
    _rerank_library(session)
    return judge_state(session)
