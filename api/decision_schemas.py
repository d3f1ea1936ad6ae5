"""Pydantic models of the decision endpoints: picks, stars, colour labels, keeper, cull."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from api.schemas import JsonFloat, JsonRowId, WholeNumber

Pick = Literal["keep", "reject"]
ColorLabel = Literal["Red", "Yellow", "Green", "Blue", "Purple"]
_DECISION_FIELDS = ("pick", "rating", "color_label")


class DecisionUpdate(BaseModel):
    """The photographer's decision on one image or many. A field left out stays as it was
    (none given: nothing changes); null clears it."""

    image_ids: list[JsonRowId] = Field(min_length=1, max_length=100_000)
    pick: Pick | None = Field(default=None, description="keep, reject, or null (undecided).")
    rating: Annotated[int, Strict(), Field(ge=0, le=5), WholeNumber] | None = Field(
        default=None, description="Stars, 0..5."
    )
    color_label: ColorLabel | None = None

    def values(self) -> dict[str, object]:
        """The fields the client sent (a field sent as null clears it)."""
        return {
            name: getattr(self, name) for name in _DECISION_FIELDS if name in self.model_fields_set
        }


class DecisionClear(BaseModel):
    image_ids: list[JsonRowId] | None = Field(
        default=None, max_length=100_000, description="Omitted or null: every image of the batch."
    )


class KeeperChoice(BaseModel):
    image_id: JsonRowId


class CullRequest(BaseModel):
    """A target: `share` of the batch's images or a `count` (one of the two)."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["share"]}, {"required": ["count"]}]}
    )

    share: Annotated[JsonFloat, Field(gt=0, le=1, examples=[0.15])] | SkipJsonSchema[None] = None
    count: (
        Annotated[int, Strict(), Field(ge=0, le=10_000_000), WholeNumber] | SkipJsonSchema[None]
    ) = None
    at_least_one_per_group: StrictBool = Field(
        default=False, description="Every group keeps one image, even past the target."
    )

    @field_validator("share", "count", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Left out, a target is None; sent as null it is not a number (the schema says so).
        if value is None:
            raise ValueError("must be a number; leave the field out instead of null")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.share is None) == (self.count is None):
            raise ValueError("give exactly one of share, count")
        return self


class CullResponse(BaseModel):
    batch_id: int
    target: int = Field(description="The number of images asked for.")
    selected: list[int] = Field(
        description="Every image kept (by the photographer or the judge), in batch order."
    )
    judge_selected: int = Field(description="Of which the judge chose (stored as judge keeps).")
    user_kept: int
    user_rejected: int
    groups: int
    groups_covered: int = Field(description="Groups with at least one image selected.")
