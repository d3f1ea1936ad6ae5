"""Pydantic models of the HTTP API (names and fields are the frontend's contract)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from processing.grouping import (
    DEFAULT_MIN_CLUSTER_SIZE,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_TIME_GAP_SECONDS,
)

# A NUL cannot be stored in a PostgreSQL text column, and a lone surrogate cannot be encoded
# as UTF-8 at all: both are refused as input (422), not found out by the database (500).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _strip_non_blank(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
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
# No NUL anywhere, either (see _UNSTORABLE).
NOT_BLANK = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
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
    # The judge's other parts (README "The judge"): shake, mean brightness, faces found.
    motion_blur: float | None = None
    brightness: float | None = None
    face_count: int | None = None
    face_sharpness: float | None = None
    processing_error: str | None = None


class Metadata(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    shot_at: datetime | None = Field(
        default=None,
        description="The capture instant, written with the camera's UTC offset when it "
        "recorded one; in UTC (Z) when it did not, and then only the wall-clock time is known.",
    )
    shot_at_local: str | None = Field(
        default=None,
        description="The camera's wall-clock time of capture, ISO 8601 without offset; "
        "show this to the photographer.",
        examples=["2024-05-01T10:20:30"],
    )
    shot_at_offset: str | None = Field(
        default=None,
        description="The UTC offset the camera recorded (EXIF OffsetTimeOriginal), e.g. "
        '"+02:00"; null when it recorded none.',
    )
    latitude: float | None = None
    longitude: float | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    camera_serial: str | None = None
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
    # The judge's other parts (README "The judge"): shake, mean brightness, faces found.
    motion_blur: float | None = None
    brightness: float | None = None
    face_count: int | None = None
    face_sharpness: float | None = None

    @model_validator(mode="after")
    def _shot_at_in_camera_offset(self) -> Self:
        # Stored in UTC; answered in the offset the photographer was in (same instant).
        if self.shot_at_local is not None and self.shot_at_offset is not None:
            self.shot_at = datetime.fromisoformat(self.shot_at_local + self.shot_at_offset)
        return self


class SimilarImage(BaseModel):
    image: ImageResponse
    similarity: float = Field(description="Cosine similarity of the embeddings, in [-1, 1].")


class ImageAssociation(BaseModel):
    image: ImageResponse
    group_label: str | None = None
    quality_rank: int | None = None
    # Below the group's keeper, why: blurred, face_blurred, motion_blur, overexposed,
    # underexposed, lower_score (a close call) or not_scored. None for keepers.
    rank_reason: str | None = None


class RejectedFile(BaseModel):
    filename: str
    reason: str


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
    image_associations: list[ImageAssociation]
    # Only on an upload's answer: every file refused (X-Rejected-Files lists the first few).
    rejected: list[RejectedFile] | None = None


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
    """How to group a batch; an omitted field takes the default measured best on real shoots."""

    min_cluster_size: int = Field(
        default=DEFAULT_MIN_CLUSTER_SIZE,
        ge=2,
        le=100_000,
        description="The smallest group: a burst with fewer frames stays Ungrouped "
        "(2 = every pair of frames of one moment is a group).",
    )
    min_samples: int = Field(
        default=DEFAULT_MIN_SAMPLES,
        ge=1,
        le=100_000,
        description="How many look-alike neighbours an image needs to anchor a group (HDBSCAN's "
        "min_samples): higher is more conservative, more images stay Ungrouped.",
    )
    metric: Literal["cosine", "euclidean"] = Field(
        default="cosine", description="How embeddings are compared; cosine suits every model."
    )
    time_gap_seconds: float | None = Field(
        default=None,
        gt=0,
        le=365 * 24 * 3600,
        description="A group never spans a gap longer than this between consecutive shots of "
        f"one camera (make, model and serial). Omitted or null: {DEFAULT_TIME_GAP_SECONDS:g} s. "
        "Images without a capture time are grouped by looks alone.",
    )
    use_capture_time: bool = Field(
        default=True,
        description="false: ignore capture times and cameras, group by looks alone.",
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
    storage: str = "ok"
    model: dict[str, Any]
    pending_thumbnails: int
    pending_quality: int
    pending_embeddings: int
    failed_images: int
    queued: int


@dataclass(frozen=True, slots=True)
class Presenter:
    """Builds responses; an embedding counts only when the active model made it (while no
    model is active, e.g. still loading after a restart, none counts)."""

    active_model: str | None

    def has_embedding(self, image: Any) -> bool:
        model = image.embedding_model
        return model is not None and model == self.active_model

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

    def batch(self, batch: Any) -> BatchResponse:
        associations = [
            ImageAssociation(
                image=self.image(a.image),
                group_label=a.group_label,
                quality_rank=a.quality_rank,
                rank_reason=a.rank_reason,
            )
            for a in batch.image_associations
        ]
        return BatchResponse(
            id=batch.id,
            batch_name=batch.batch_name,
            status=batch.status,
            parameters=batch.parameters,
            error=batch.error,
            created_at=batch.created_at,
            updated_at=batch.updated_at,
            image_count=len(associations),
            embedded_count=sum(a.image.has_embedding for a in associations),
            image_associations=associations,
        )
