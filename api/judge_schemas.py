"""Pydantic models of the judge endpoints: the weights that rank and how they agree with the
photographer's held-back choices."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class JudgeAgreementFigures(BaseModel):
    keepers_right: int = Field(description="Groups whose chosen keeper the judge ranked first.")
    keepers: int = Field(description="Groups with a keeper chosen.")
    pairs_right: int = Field(description="Preferences (keeper over other, other over reject) kept.")
    pairs: int


class JudgeAgreement(BaseModel):
    """Each group's choices judged by weights fitted without them, beside the default judge."""

    method: str = Field(examples=["leave-one-group-out"])
    fitted: JudgeAgreementFigures
    default: JudgeAgreementFigures


class JudgeResponse(BaseModel):
    in_use: Literal["fitted", "default"] = Field(
        description="Which weights rank: the fitted ones, or the default judge's (never fitted, "
        "or the fitted ones agreed less often with held-back choices; `note` says which)."
    )
    weights: dict[str, float] = Field(description="The weights ranking uses, by part.")
    default_weights: dict[str, float]
    fitted_weights: dict[str, float] | None = None
    groups: int = Field(description="Groups whose keeper choices and rejects the fit learned from.")
    pairs: int
    agreement: JudgeAgreement | None = None
    fitted_at: datetime | None = None
    note: str
