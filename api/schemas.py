"""Pydantic models of the HTTP API (names and fields are the frontend's contract)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, Self

from fastapi import Response
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticUndefined, to_json

from crud.crud_batch import MEMBER_FIELDS
from database import readiness
from services.analysis_service import EncodedAnswer
from services.batch_service import (
    GROUP_NOTES,
    PREVIEW_IMAGES,
    BatchMembers,
    BatchOverview,
    BatchView,
    split_ids,
)

if TYPE_CHECKING:
    from services.batch_service import BatchSummary

from processing.grouping import (
    DEFAULT_MIN_CLUSTER_SIZE,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_TIME_GAP_SECONDS,
)

# A NUL cannot be stored in a PostgreSQL text column, and a lone surrogate cannot be encoded
# as UTF-8 at all: both are refused as input (422), not found out by the database (500).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")

# What a name or a group label must not hold: C0 and C1 controls (U+0085 included) and the
# BMP's non-characters, which XML 1.0 (the XMP sidecars) and most tools cannot carry. Spelled
# out as escapes, not \s or \p{..}, so that Python's `re` and an ECMAScript client read the
# published pattern the same way.
_FORBIDDEN = r"\u0000-\u001f\u007f-\u009f\ufdd0-\ufdef\ufffe\uffff"
# The blanks a name is stripped of (controls are refused, not stripped). U+FEFF is not one:
# neither Python's str.strip nor the pattern below treats it as blank.
_BLANKS = r"\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_BLANK_CHARS = " \u00a0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)
# Names and labels: no forbidden character, and at least one that is not blank. The server
# checks exactly this pattern (then strips the blanks), so a client that follows the published
# schema is never refused, and one that does not always is.
NOT_BLANK = rf"^[^{_FORBIDDEN}]*[^{_FORBIDDEN}{_BLANKS}][^{_FORBIDDEN}]*$"
_NOT_BLANK = re.compile(NOT_BLANK)

# Kept as stored (a string) so a batch page, encoded from plain rows, answers the same.
EYES_FIELD = Field(
    default=None,
    description='Per face found, in order: "open", "closed" or "unknown" (too small to read, '
    "or no face after all), comma-separated; null when no face was found.",
    examples=["open,closed"],
)

FACE_SHARPNESSES_FIELD = Field(
    default=None,
    description="Per face found, in the order of `eyes`: its sharpness in [0, 1] (is that face "
    'in focus), two decimals, comma-separated ("unknown" if too small to measure); null when '
    "no face was found. face_sharpness is their size-weighted mean.",
    examples=["0.82,0.31"],
)


class FaceRead(BaseModel):
    """One face the judge found, for a close-up: where it is and what was read on it."""

    x: float = Field(description="Left edge, as a fraction of the upright frame's width.")
    y: float = Field(description="Top edge, as a fraction of the upright frame's height.")
    width: float = Field(description="As a fraction of the upright frame's width.")
    height: float = Field(description="As a fraction of the upright frame's height.")
    eyes: Literal["open", "closed", "unknown"]
    sharpness: float | None = Field(
        default=None, description="The face's own sharpness in [0, 1]; null if too small."
    )
    eye_sharpness: float | None = Field(
        default=None,
        description="The eyes' own sharpness in [0, 1] (the region around both eyes); null "
        "where the eyes were not placed.",
    )


def _strip_non_blank(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    if not _NOT_BLANK.fullmatch(value):
        raise ValueError(
            "must not be blank, nor contain control characters (U+0000-U+001F, U+007F-U+009F) "
            "or non-characters (U+FDD0-U+FDEF, U+FFFE, U+FFFF)"
        )
    return value.strip(_BLANK_CHARS)


def _whole_float_to_int(value: Any) -> Any:
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# Ids and offsets stay within the integers a JSON client represents exactly (JavaScript's
# MAX_SAFE_INTEGER): a larger number is refused here (422) instead of overflowing the database
# driver (SQLite raises OverflowError past 64 bits: a 500).
MAX_SAFE_INTEGER = 2**53 - 1
RowId = Annotated[int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
# An id in a JSON body is a JSON number without a fraction: `true` and `"3"` are refused
# (422), where pydantic's lax mode took them for 1 and 3. `3.0` is taken as 3: JSON Schema's
# "integer" (the published type) admits it, and a server refusing what its schema admits is
# refusing valid input (schemathesis' positive cases send exactly that).
# Bounds go before WholeNumber (last, so it runs first), or they leave the published schema.
WholeNumber = BeforeValidator(_whole_float_to_int)
JsonRowId = Annotated[
    int,
    Strict(),
    Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER),
    # Last, so it runs first, and the bounds above stay in the published schema.
    WholeNumber,
]

# Any other number in a JSON body is a JSON number too: `true` and `"3"` are refused (422)
# where pydantic's lax mode read them as 1 and 3 (schemathesis ST201); a whole float (`3.0`)
# is an integer, as for ids.
JsonInt = Annotated[int, Strict(), WholeNumber]
JsonFloat = Annotated[float, Strict()]

BatchName = Field(min_length=1, max_length=255, json_schema_extra={"pattern": NOT_BLANK})


class JudgeParts(BaseModel):
    """The judge's values of an image (README "The judge"), as ImageResponse and Metadata both
    carry them: written once here."""

    model_config = ConfigDict(from_attributes=True)

    quality_score: float | None = None
    sharpness: float | None = None
    exposure: float | None = None
    # The judge's other parts (README "The judge"): shake, mean brightness, faces found.
    motion_blur: float | None = None
    brightness: float | None = None
    face_count: int | None = None
    face_sharpness: float | None = None
    eyes: str | None = EYES_FIELD
    face_sharpnesses: str | None = FACE_SHARPNESSES_FIELD
    eye_sharpness: float | None = Field(
        default=None,
        description="The eyes' own sharpness in [0, 1] (eye focus), size-weighted over the "
        "faces whose eyes were placed; beside face_sharpness.",
    )
    faces: list[FaceRead] | None = Field(
        default=None,
        description="Each face found, in the order of `eyes`: its box (fractions of the "
        "image with EXIF orientation applied), eyes, sharpness and eye sharpness; null when "
        "none was found.",
    )


class ImageResponse(JudgeParts):
    id: int
    filename: str
    original_filename: str
    file_path: str
    has_thumbnail: bool
    has_embedding: bool
    is_duplicate: bool = False
    message: str | None = None
    processing_error: str | None = None
    companion_original_filename: str | None = Field(
        default=None,
        description="A RAW+JPEG pair is one image with two files: the second file's name "
        "(`GET /images/{id}?which=companion`); null for a photo with one file.",
    )
    companion_mime_type: str | None = Field(
        default=None, description="The second file's MIME type, null when there is none."
    )


class Metadata(JudgeParts):
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
    exposure_bias: float | None = Field(
        default=None, description="Exposure compensation in EV (EXIF ExposureBiasValue)."
    )
    exposure_mode: int | None = Field(
        default=None, description="EXIF ExposureMode: 0 auto, 1 manual, 2 auto bracket."
    )
    focus_distance: float | None = Field(
        default=None,
        description="The distance focused at, in metres (EXIF SubjectDistance); null when "
        "the camera did not write it, wrote 0 (unknown) or infinity.",
    )

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
    # underexposed, lower_score (a close call) or not_scored; user_choice (the judge's pick,
    # passed over by the photographer), user_rejected. None for keepers.
    rank_reason: str | None = None
    suggested_rank: int | None = Field(
        default=None, description="The judge's own rank (quality alone); 1 = its suggestion."
    )
    group_kind: Literal["burst", "bracket", "focus_stack", "panorama"] | None = Field(
        default=None,
        description="burst: one keeper suggested; bracket: an exposure bracket, "
        "focus_stack: frames focused at stepping distances, and panorama: a sweep of "
        "overlapping frames, kept whole (every frame a keeper). "
        "Null for Ungrouped images.",
    )
    pick: Literal["keep", "reject"] | None = Field(
        default=None, description="The decision: keep, reject, or none."
    )
    rating: int | None = Field(default=None, description="Stars 0..5 set by the photographer.")
    color_label: str | None = None
    decided_by: Literal["user", "judge"] | None = Field(
        default=None,
        description="user: the photographer's (never overwritten by analyze, rank or cull); "
        "judge: a cull's.",
    )
    decided_at: datetime | None = None
    is_keeper: bool = Field(
        default=False,
        description="Kept: the decision's pick where there is one, else the judge's suggestion.",
    )
    suggested_keeper: bool = Field(
        default=False, description="The judge's suggestion, shown beside the decision."
    )


class RejectedFile(BaseModel):
    filename: str
    reason: str


class GroupSummary(BaseModel):
    """How sure the analysis was of one group (absent after a manual regrouping)."""

    label: str
    size: int
    cohesion: float | None = Field(
        default=None, description="The weakest link holding the group together (cosine)."
    )
    may_hold_moments: bool = Field(
        default=False,
        description="The shooting sequence had a candidate cut inside the group that was not "
        "taken; `split_before_image_id` is where (PUT /batches/{id}/groups splits it).",
    )
    split_before_image_id: int | None = None


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
    groups: list[GroupSummary] = Field(
        default_factory=list,
        description="Each group of the last analysis in page order, with how sure it is; "
        "empty in the `include=summary` list.",
    )
    # Only on an upload's answer: every file refused (X-Rejected-Files lists the first few).
    rejected: list[RejectedFile] | None = None


class BatchCreate(BaseModel):
    name: str = BatchName
    image_ids: list[JsonRowId] = Field(default_factory=list, max_length=100_000)

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
    image_ids: list[JsonRowId] = Field(min_length=1, max_length=100_000)


class AnalyzeRequest(BaseModel):
    """How to group a batch; an omitted field takes the default measured best on real shoots."""

    min_cluster_size: JsonInt = Field(
        default=DEFAULT_MIN_CLUSTER_SIZE,
        ge=2,
        le=100_000,
        description="The smallest group: a burst with fewer frames stays Ungrouped "
        "(2 = every pair of frames of one moment is a group).",
    )
    min_samples: JsonInt = Field(
        default=DEFAULT_MIN_SAMPLES,
        ge=1,
        le=100_000,
        description="How many look-alike neighbours an image needs to anchor a group (HDBSCAN's "
        "min_samples): higher is more conservative, more images stay Ungrouped.",
    )
    metric: Literal["cosine", "euclidean"] = Field(
        default="cosine", description="How embeddings are compared; cosine suits every model."
    )
    time_gap_seconds: JsonFloat | None = Field(
        default=None,
        gt=0,
        le=365 * 24 * 3600,
        description="A group never spans a gap longer than this between consecutive shots of "
        f"one camera (make, model and serial). Omitted or null: {DEFAULT_TIME_GAP_SECONDS:g} s. "
        "Images without a capture time are grouped by looks alone, each camera's apart.",
    )
    use_capture_time: StrictBool = Field(
        default=True,
        description="false: ignore capture times and cameras, group by looks alone.",
    )


GroupLabel = Annotated[
    str, StringConstraints(min_length=1, max_length=50), AfterValidator(_strip_non_blank)
]


def _labels_not_blank(schema: dict[str, Any]) -> None:
    schema["propertyNames"]["pattern"] = NOT_BLANK


class GroupsUpdate(BaseModel):
    group_map: dict[GroupLabel, list[JsonRowId]] = Field(
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
    403: "Not allowed here (e.g. a folder outside IMPORT_ROOTS, or imports off)",
    404: "Not found",
    409: "Conflict with the current state; try again shortly",
    413: "A file is larger than MAX_UPLOAD_BYTES",
    500: "Clustering failed; the batch is marked failed with the error",
    503: "A dependency is unavailable (the database, the storage, the embedding model or a busy "
    "pool): a fault, not a defect; try again after `Retry-After` seconds",
}
# Every 503 says when to come back (api/errors.py).
_RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the domain errors a route can answer with."""
    responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[code]}
        for code in status_codes
    }
    if 503 in responses:
        responses[503]["headers"] = _RETRY_AFTER_HEADER
    return responses


_SLOW_BODY = {
    "description": "The request body arrived slower than BODY_MIN_BYTES_PER_SECOND once "
    "BODY_GRACE_SECONDS were spent (api/guards.py); the connection is closed",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
}


def document_slow_bodies(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation that takes a body may answer 408 (the request guard's, outside the
    routes): said in the OpenAPI `schema`, in place."""
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method in {"post", "put", "patch"}:
                operation.setdefault("responses", {}).setdefault("408", _SLOW_BODY)
    return schema


class RootResponse(BaseModel):
    message: str


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    storage: str = Field(
        "ok",
        description="ok; unwritable (a storage folder cannot be written); full (less free "
        "space than STORAGE_MIN_FREE_MB)",
    )
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
    return Response(_encoded(content), status_code, headers, media_type="application/json")


def _encoded(content: Any) -> bytes:
    return to_json(content, inf_nan_mode="null")


# ImageResponse fields that are not read from the image row.
_DERIVED_IMAGE_FIELDS = frozenset({"has_embedding", "is_duplicate", "message"})
# BatchResponse fields the Presenter computes from the memberships.
_DERIVED_BATCH_FIELDS = frozenset(
    {
        "image_count",
        "embedded_count",
        "image_associations",
        "preview_image_ids",
        "rejected",
        "groups",
    }
)


def group_summaries(
    parameters: Mapping[str, Any] | None, members: Sequence[Any], id_at: int
) -> list[dict[str, Any]]:
    """Each group among `members` (page order; the image id at `id_at`), with the analysis's
    notes on it where they still describe it (GroupSummary as dicts)."""
    label_at = MEMBER_FIELDS.index("group_label")
    splits = split_ids(parameters)
    sizes: dict[str, int] = {}
    labels_of: dict[int, str | None] = {}
    for member in members:
        label = member[label_at]
        if readiness.is_grouped(label):
            sizes[label] = sizes.get(label, 0) + 1
        if member[id_at] in splits:
            labels_of[member[id_at]] = label
    return noted_groups(parameters, sizes, labels_of)


def noted_groups(
    parameters: Mapping[str, Any] | None,
    sizes: Mapping[str, int],
    labels_of: Mapping[int, str | None],
) -> list[dict[str, Any]]:
    """GroupSummary dicts of the groups of `sizes` (in its order), with the analysis's notes
    where they still describe them: a split is kept while its image (`labels_of`: the current
    label of each member the notes name) is still in that group."""
    stored = (parameters or {}).get(GROUP_NOTES) or []
    notes = {note["label"]: note for note in stored if isinstance(note, dict) and "label" in note}
    summaries = []
    for label, size in sizes.items():
        note = notes.get(label, {})
        split = note.get("split_before_image_id")
        split = split if split is not None and labels_of.get(split) == label else None
        summaries.append(
            {
                "label": label,
                "size": size,
                "cohesion": note.get("cohesion"),
                "may_hold_moments": split is not None,
                "split_before_image_id": split,
            }
        )
    return summaries


def _default(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields[name]
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.default is PydanticUndefined else field.default


def _batch_body(
    batch: Any,
    *,
    image_count: int,
    embedded_count: int,
    preview_image_ids: list[int],
    image_associations: list[dict[str, Any]],
    rejected: list[dict[str, Any]] | None = None,
    groups: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The one place a BatchResponse dict is put together: the batch row's own fields and the
    derived ones (every batch answer, summaries included, is built here)."""
    body = {
        name: getattr(batch, name)
        for name in BatchResponse.model_fields
        if name not in _DERIVED_BATCH_FIELDS
    }
    body.update(
        image_count=image_count,
        embedded_count=embedded_count,
        image_associations=image_associations,
        preview_image_ids=preview_image_ids,
        rejected=rejected,
        groups=groups or [],
    )
    return body


# Groups a `view=summary` answer lists by default, and at most: ~100 bytes each, so a summary
# stays under 1 MB however many groups (12,500 groups of 8 in a 100k batch made 1.28 MB).
DEFAULT_SUMMARY_GROUPS = 1000
MAX_SUMMARY_GROUPS = 5000


@dataclass(frozen=True, slots=True)
class AnswerView:
    """What a batch answer holds (`kind`), and which of the summary's groups it lists."""

    kind: BatchView = "full"
    group_offset: int = 0
    group_limit: int = DEFAULT_SUMMARY_GROUPS


# A membership in page order: (*MEMBER_FIELDS, *image values by column).
Member = tuple[Any, ...]


def _association(image: dict[str, Any], member: Member) -> dict[str, Any]:
    values = dict(zip(MEMBER_FIELDS, member, strict=False))
    placed = _Placed(values["group_label"], values["quality_rank"], values["pick"])
    values["is_keeper"] = readiness.is_keeper(placed)
    values["suggested_keeper"] = readiness.is_suggested_keeper(
        values["group_label"], values["suggested_rank"]
    )
    return {"image": image, **values}


class _Placed(NamedTuple):
    group_label: str | None
    quality_rank: int | None
    pick: str | None


@dataclass(frozen=True, slots=True)
class Presenter:
    """Builds responses; an embedding counts only when the active model made it (while no
    model is active, e.g. still loading after a restart, none counts)."""

    active_model: str | None

    def image(
        self, image: Any, is_duplicate: bool = False, message: str | None = None
    ) -> ImageResponse:
        stored = (n for n in ImageResponse.model_fields if n not in _DERIVED_IMAGE_FIELDS)
        values = {n: getattr(image, n) for n in stored}
        values.update(
            has_embedding=readiness.is_embedded(image.embedding_model, self.active_model),
            is_duplicate=is_duplicate,
            message=message,
        )
        return ImageResponse.model_validate(values)

    # Batches are built as plain dicts, generic over the schemas' fields, and encoded once:
    # validating thousands of nested models per request cost more than the query.

    @staticmethod
    def image_columns() -> list[str]:
        """What an image in a batch response is made of: ImageResponse's own fields (the image
        row's values) and the embedding model. Fields with no such column take their default."""
        names = [n for n in ImageResponse.model_fields if n not in _DERIVED_IMAGE_FIELDS]
        return [*names, "embedding_model"]

    def images(self, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> Response:
        """A list of images from plain rows of the values of `columns` (crud_image.image_rows),
        encoded once: no model validated per image."""
        build = self._image_builder(columns, first=0)
        return json_response([build(row) for row in rows])

    def _image_builder(
        self, columns: Sequence[str], first: int = len(MEMBER_FIELDS)
    ) -> Callable[[Member], dict[str, Any]]:
        """Member tuple (*MEMBER_FIELDS, *values of `columns`) -> ImageResponse dict; the
        image's values start at `first` (a bare image row: 0)."""
        index = {name: at + first for at, name in enumerate(columns)}
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
            image["has_embedding"] = readiness.is_embedded(model, active)
            return image

        return build

    def batch_values(
        self, batch: Any, columns: Sequence[str], members: Sequence[Member]
    ) -> dict[str, Any]:
        """A BatchResponse as a dict, from the batch and its memberships as plain rows."""
        build = self._image_builder(columns)
        images = [build(member) for member in members]
        return _batch_body(
            batch,
            image_count=len(members),
            embedded_count=sum(image["has_embedding"] for image in images),
            preview_image_ids=[image["id"] for image in images[:PREVIEW_IMAGES]],
            image_associations=[
                _association(image, member) for image, member in zip(images, members, strict=True)
            ],
            groups=group_summaries(
                batch.parameters, members, len(MEMBER_FIELDS) + list(columns).index("id")
            ),
        )

    def batch_page(self, page: BatchMembers, status_code: int = 200) -> Response:
        body = self.batch_values(page.batch, page.columns, page.members)
        return json_response(body, status_code=status_code)

    def batch_list(self, pages: Sequence[BatchMembers], total: int) -> Response:
        body = [self.batch_values(page.batch, page.columns, page.members) for page in pages]
        return json_response(body, headers={"X-Total-Count": str(total)})

    def batch_summaries(self, summaries: Sequence[BatchSummary], total: int) -> Response:
        body = [
            _batch_body(
                summary.batch,
                image_count=summary.image_count,
                embedded_count=summary.embedded_count,
                preview_image_ids=summary.preview_image_ids,
                image_associations=[],
            )
            for summary in summaries
        ]
        return json_response(body, headers={"X-Total-Count": str(total)})

    def batch_overview(
        self, overview: BatchOverview, view: AnswerView, status_code: int = 200
    ) -> Response:
        """A batch's `view=summary` answer: counts, covers and the groups of the view's window,
        no memberships (the analysis's notes are in `groups`, not repeated in `parameters`);
        `X-Total-Groups` says how many groups there are."""
        body, headers = self.overview_values(overview, view)
        return json_response(body, status_code=status_code, headers=headers)

    def overview_values(
        self, overview: BatchOverview, view: AnswerView
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """batch_overview's body and headers."""
        summary = overview.summary
        start = view.group_offset
        window = dict(list(overview.group_sizes.items())[start : start + view.group_limit])
        body = _batch_body(
            summary.batch,
            image_count=summary.image_count,
            embedded_count=summary.embedded_count,
            preview_image_ids=summary.preview_image_ids,
            image_associations=[],
            groups=noted_groups(summary.batch.parameters, window, overview.labels_of),
        )
        if body["parameters"] is not None:
            body["parameters"] = {k: v for k, v in body["parameters"].items() if k != GROUP_NOTES}
        return body, {"X-Total-Groups": str(len(overview.group_sizes))}

    def answer_values(
        self, answer: BatchMembers | BatchOverview, view: AnswerView
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """batch_answer's body and headers."""
        if isinstance(answer, BatchMembers):
            return self.batch_values(answer.batch, answer.columns, answer.members), {}
        return self.overview_values(answer, view)

    def batch_answer(
        self, answer: BatchMembers | BatchOverview, view: AnswerView, status_code: int = 200
    ) -> Response:
        """The page of a batch, or its overview (`view=summary`)."""
        if isinstance(answer, BatchMembers):
            return self.batch_page(answer, status_code)
        return self.batch_overview(answer, view, status_code)

    def batch(
        self,
        batch: Any,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        rejected: Sequence[RejectedFile] | None = None,
    ) -> Response:
        """The response for a batch loaded with its associations (after a change); `rejected`:
        the files an upload refused."""
        associations = batch.image_associations
        sample = associations[0].image if associations else None
        columns = [n for n in self.image_columns() if sample is None or hasattr(sample, n)]
        members = [
            (*(getattr(a, f) for f in MEMBER_FIELDS), *(getattr(a.image, n) for n in columns))
            for a in associations
        ]
        body = self.batch_values(batch, columns, members)
        if rejected:
            body["rejected"] = [file.model_dump() for file in rejected]
        return json_response(body, status_code=status_code, headers=headers)


def encoded_batch_answer(
    view: AnswerView, answer: BatchMembers | BatchOverview, active_model: str
) -> EncodedAnswer:
    """The bytes and headers of `Presenter(active_model).batch_answer(answer, view)`: what an
    analysis's worker sends back (a module-level function: it pickles by name)."""
    body, headers = Presenter(active_model).answer_values(answer, view)
    return EncodedAnswer(_encoded(body), headers)
