"""Pydantic models of the HTTP API (names and fields are the frontend's contract)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticUndefined, to_json

from services.batch_service import PREVIEW_IMAGES

if TYPE_CHECKING:
    from services.batch_service import BatchMembers, BatchSummary


def _strip_non_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


# Ids and offsets stay within the integers a JSON client represents exactly (JavaScript's
# MAX_SAFE_INTEGER): a larger number is refused here (422) instead of overflowing the database
# driver (SQLite raises OverflowError past 64 bits: a 500).
MAX_SAFE_INTEGER = 2**53 - 1
RowId = Annotated[int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]

# Names and labels are stripped and must not be blank; the pattern (at least one non-space
# character) tells clients so, where min_length alone would promise that "  " is accepted.
NOT_BLANK = r"\S"
BatchName = Field(min_length=1, max_length=255, json_schema_extra={"pattern": NOT_BLANK})


class ImageResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    filename: str
    original_filename: str
    file_path: str
    has_thumbnail: bool
    has_embedding: bool
    is_duplicate: bool = False
    message: str | None = None
    quality_score: float | None = None
    sharpness: float | None = None
    exposure: float | None = None
    processing_error: str | None = None


class Metadata(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    shot_at: datetime | None = None
    latitude: float | None = None
    longitude: float | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens_model: str | None = None
    focal_length: str | None = None
    f_number: float | None = None
    exposure_time: str | None = None
    iso: int | None = None
    caption: str | None = None
    tags: list[str] | None = None
    rating: int | None = None
    quality_score: float | None = None
    sharpness: float | None = None
    exposure: float | None = None


class SimilarImage(BaseModel):
    image: ImageResponse
    similarity: float = Field(description="Cosine similarity of the embeddings, in [-1, 1].")


class ImageAssociation(BaseModel):
    image: ImageResponse
    group_label: str | None = None
    quality_rank: int | None = None


class BatchResponse(BaseModel):
    id: int
    batch_name: str
    status: Literal["pending", "processing", "complete", "failed"]
    parameters: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    image_count: int
    embedded_count: int
    image_associations: list[ImageAssociation] = Field(
        description="Every image with its group and rank; empty in the `include=summary` list."
    )
    preview_image_ids: list[int] = Field(
        default_factory=list, description="The first few image ids, in page order (covers)."
    )


class BatchCreate(BaseModel):
    name: str = BatchName
    image_ids: list[RowId] = Field(default_factory=list, max_length=100_000)

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return _strip_non_blank(value)


class BatchRename(BaseModel):
    name: str = BatchName

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return _strip_non_blank(value)


class ImageIds(BaseModel):
    image_ids: list[RowId] = Field(min_length=1, max_length=100_000)


class AnalyzeRequest(BaseModel):
    min_cluster_size: int = Field(default=5, ge=2, le=100_000)
    min_samples: int = Field(default=5, ge=1, le=100_000)
    metric: Literal["cosine", "euclidean"] = "cosine"
    time_gap_seconds: float | None = Field(
        default=None,
        gt=0,
        le=365 * 24 * 3600,
        description="Split a group where consecutive shots are further apart than this.",
    )


GroupLabel = Annotated[
    str, StringConstraints(min_length=1, max_length=50), AfterValidator(_strip_non_blank)
]


def _labels_not_blank(schema: dict[str, Any]) -> None:
    schema["propertyNames"]["pattern"] = NOT_BLANK


class GroupsUpdate(BaseModel):
    group_map: dict[GroupLabel, list[RowId]] = Field(
        min_length=1, json_schema_extra=_labels_not_blank
    )


class MessageResponse(BaseModel):
    message: str


class ErrorResponse(BaseModel):
    """A refused request: `detail` says why; some errors add fields (e.g. `missing_ids`)."""

    model_config = ConfigDict(extra="allow")

    detail: str


_ERROR_DESCRIPTIONS = {
    400: "Invalid input, or a body that cannot be parsed",
    401: "Missing or wrong API key (only when API_KEY is set)",
    404: "Not found",
    409: "Conflict with the current state; try again shortly",
    413: "A file is larger than MAX_UPLOAD_BYTES",
    500: "Clustering failed; the batch is marked failed with the error",
    503: "No embedding model could be loaded",
}


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the domain errors a route can answer with."""
    return {
        code: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[code]}
        for code in status_codes
    }


class RootResponse(BaseModel):
    message: str


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    model: dict[str, Any]
    pending_thumbnails: int
    pending_quality: int
    pending_embeddings: int
    failed_images: int
    queued: int


def json_response(
    content: Any, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A finished JSON response, encoded once (pydantic-core, in Rust).

    FastAPI returns a `Response` as it is: no second validation of a built response, and no
    trip to the thread pool after the route (a route holding a write lock could otherwise wait
    there for a thread while every thread waits for that lock). `response_model` on the route
    still documents the shape."""
    body = to_json(content, inf_nan_mode="null")
    return Response(body, status_code, headers, media_type="application/json")


# ImageResponse fields that are not read from the image row.
_DERIVED_IMAGE_FIELDS = frozenset({"has_embedding", "is_duplicate", "message"})
# BatchResponse fields the Presenter computes from the memberships.
_DERIVED_BATCH_FIELDS = frozenset(
    {"image_count", "embedded_count", "image_associations", "preview_image_ids"}
)


def _default(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields[name]
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.default is PydanticUndefined else field.default


# A membership in page order: (group_label, quality_rank, *image values by column).
Member = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Presenter:
    """Builds responses; an embedding counts only when the active model made it."""

    active_model: str | None

    def has_embedding(self, image: Any) -> bool:
        model = image.embedding_model
        return model is not None and (self.active_model is None or model == self.active_model)

    def image(
        self, image: Any, is_duplicate: bool = False, message: str | None = None
    ) -> ImageResponse:
        response = ImageResponse.model_validate(image)
        return response.model_copy(
            update={
                "has_embedding": self.has_embedding(image),
                "is_duplicate": is_duplicate,
                "message": message,
            }
        )

    # Batches are built as plain dicts, generic over the schemas' fields, and encoded once:
    # validating thousands of nested models per request cost more than the query.

    @staticmethod
    def image_columns() -> list[str]:
        """What an image in a batch response is made of: ImageResponse's own fields (the image
        row's values) and the embedding model. Fields with no such column take their default."""
        names = [n for n in ImageResponse.model_fields if n not in _DERIVED_IMAGE_FIELDS]
        return [*names, "embedding_model"]

    def _image_builder(self, columns: Sequence[str]) -> Callable[[Member], dict[str, Any]]:
        """Member tuple (group_label, quality_rank, *values of `columns`) -> ImageResponse dict."""
        index = {name: at + 2 for at, name in enumerate(columns)}
        stored = [n for n in ImageResponse.model_fields if n in index]
        stored = [n for n in stored if n not in _DERIVED_IMAGE_FIELDS]
        getter = itemgetter(*(index[n] for n in stored))

        def take(member: Member) -> tuple[Any, ...]:
            values = getter(member)
            return values if len(stored) > 1 else (values,)

        defaults = {
            n: _default(ImageResponse, n) for n in ImageResponse.model_fields if n not in stored
        }
        model_at = index.get("embedding_model")
        active = self.active_model

        def build(member: Member) -> dict[str, Any]:
            image = dict(zip(stored, take(member), strict=True))
            image.update(defaults)
            model = None if model_at is None else member[model_at]
            image["has_embedding"] = model is not None and (active is None or model == active)
            return image

        return build

    def batch_values(
        self, batch: Any, columns: Sequence[str], members: Sequence[Member], *, summary: bool
    ) -> dict[str, Any]:
        """A BatchResponse as a dict (`summary`: without the associations)."""
        result = {
            name: getattr(batch, name)
            for name in BatchResponse.model_fields
            if name not in _DERIVED_BATCH_FIELDS
        }
        build = self._image_builder(columns)
        images = [build(member) for member in members]
        result["image_count"] = len(members)
        result["embedded_count"] = sum(image["has_embedding"] for image in images)
        result["preview_image_ids"] = [image["id"] for image in images[:PREVIEW_IMAGES]]
        result["image_associations"] = (
            []
            if summary
            else [
                {"image": image, "group_label": member[0], "quality_rank": member[1]}
                for image, member in zip(images, members, strict=True)
            ]
        )
        return result

    def batch_page(self, page: BatchMembers) -> Response:
        return json_response(
            self.batch_values(page.batch, page.columns, page.members, summary=False)
        )

    def batch_list(self, pages: Sequence[BatchMembers], total: int) -> Response:
        body = [
            self.batch_values(page.batch, page.columns, page.members, summary=False)
            for page in pages
        ]
        return json_response(body, headers={"X-Total-Count": str(total)})

    def batch_summaries(self, summaries: Sequence[BatchSummary], total: int) -> Response:
        body = []
        for summary in summaries:
            values = {
                name: getattr(summary.batch, name)
                for name in BatchResponse.model_fields
                if name not in _DERIVED_BATCH_FIELDS
            }
            values["image_count"] = summary.image_count
            values["embedded_count"] = summary.embedded_count
            values["preview_image_ids"] = summary.preview_image_ids
            values["image_associations"] = []
            body.append(values)
        return json_response(body, headers={"X-Total-Count": str(total)})

    def batch(
        self, batch: Any, *, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        """The response for a batch loaded with its associations (after a change)."""
        associations = batch.image_associations
        sample = associations[0].image if associations else None
        columns = [n for n in self.image_columns() if sample is None or hasattr(sample, n)]
        members = [
            (a.group_label, a.quality_rank, *(getattr(a.image, n) for n in columns))
            for a in associations
        ]
        body = self.batch_values(batch, columns, members, summary=False)
        return json_response(body, status_code=status_code, headers=headers)
